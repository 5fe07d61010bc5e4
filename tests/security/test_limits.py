"""Per-tenant limits: counted in the database, so two API replicas share them; 429 + Retry-After.
Every test runs on SQLite and on PostgreSQL (a fresh database per test, cloned from the
contract suite's migrated template)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.api.app import create_app
from tests.contract.conftest import FakeClock, backend, db_url, pg_databases  # noqa: F401  (fixtures)
from tests.integration.conftest import Service, assert_problem, close_app
from tests.security.keys import bearer, new_key

pytestmark = pytest.mark.anyio
NOON = 1_700_049_600.0  # 2023-11-15 12:00:00 UTC: half a day before the daily window ends


@pytest.fixture(autouse=True)
def _on_each_store(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """``service`` (and so the second replica) builds its settings after this: both replicas
    use the parametrized store's database."""
    monkeypatch.setenv("DATABASE_URL", db_url)


@pytest.fixture
async def second_replica(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    """Another API process on the same database and data dir (no shared memory)."""
    app = create_app(service.settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://replica2"
    ) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client
    close_app(app)


def freeze(clock: FakeClock, *apps: object) -> None:
    for app in apps:
        app.state.limiter.clock = clock  # type: ignore[attr-defined]


async def post_video(client: httpx.AsyncClient, path: Path, headers: dict[str, str]) -> httpx.Response:
    with path.open("rb") as fh:
        return await client.post("/v1/jobs", files={"file": (path.name, fh, "video/mp4")}, headers=headers)


def assert_rate_limited(response: httpx.Response, limit: str, retry_after: int) -> None:
    body = assert_problem(response, 429, "rate_limited")
    assert body["limit"] == limit and body["retry_after"] == retry_after
    assert response.headers["retry-after"] == str(retry_after)


@pytest.mark.settings(auth_enabled=True, tenant_requests_per_second=3)
async def test_request_rate_is_shared_by_two_replicas(
    service: Service, second_replica: httpx.AsyncClient
) -> None:
    clock = FakeClock(NOON + 0.25)
    freeze(clock, service.app, second_replica.app)  # type: ignore[attr-defined]
    acme, other = bearer(new_key(service.app, "acme")), bearer(new_key(service.app, "other"))
    replicas = [service.client, second_replica]
    statuses = [(await replicas[i % 2].get("/v1/jobs", headers=acme)).status_code for i in range(3)]
    assert statuses == [200, 200, 200]
    refused = await second_replica.get("/v1/jobs", headers=acme)
    assert_rate_limited(refused, "requests_per_second", 1)
    assert_rate_limited(await service.client.get("/v1/models", headers=acme), "requests_per_second", 1)
    # Other tenants have their own budget; the next second starts a new window.
    assert (await service.client.get("/v1/jobs", headers=other)).status_code == 200
    clock.advance(1.0)
    assert (await second_replica.get("/v1/jobs", headers=acme)).status_code == 200


@pytest.mark.settings(tenant_requests_per_second=2)
async def test_rate_limit_applies_with_auth_off_and_spares_probes(service: Service) -> None:
    freeze(FakeClock(NOON), service.app)
    assert [(await service.client.get("/v1/jobs")).status_code for _ in range(3)] == [200, 200, 429]
    assert (await service.client.get("/healthz")).status_code == 200
    assert (await service.client.get("/readyz")).status_code == 200


@pytest.mark.settings(auth_enabled=True, tenant_max_active_jobs=2)
async def test_active_jobs_limit_is_checked_before_the_body(
    service: Service, second_replica: httpx.AsyncClient, short_clip: Path
) -> None:
    acme = bearer(new_key(service.app, "acme"))
    assert (await post_video(service.client, short_clip, acme)).status_code == 202
    assert (await post_video(second_replica, short_clip, acme)).status_code == 202
    refused = await post_video(second_replica, short_clip, acme)
    assert_rate_limited(refused, "active_jobs", 10)
    assert len(service.stored_files()) == 2
    assert list((service.settings.videos_dir / ".tmp").iterdir()) == []
    # Another tenant is not affected; a finished job frees a slot.
    assert (
        await post_video(service.client, short_clip, bearer(new_key(service.app, "b")))
    ).status_code == 202
    assert service.new_worker().run_once() is True
    assert (await post_video(service.client, short_clip, acme)).status_code == 202


@pytest.mark.settings(auth_enabled=True)
async def test_bytes_per_day_across_replicas(
    service: Service, second_replica: httpx.AsyncClient, short_clip: Path
) -> None:
    size = short_clip.stat().st_size
    for app in (service.app, second_replica.app):  # type: ignore[attr-defined]
        app.state.settings = app.state.limiter.settings = service.settings.model_copy(
            update={"tenant_bytes_per_day": 2 * size + size // 2}
        )
    clock = FakeClock(NOON)
    freeze(clock, service.app, second_replica.app)  # type: ignore[attr-defined]
    acme = bearer(new_key(service.app, "acme"))
    assert (await post_video(service.client, short_clip, acme)).status_code == 202
    assert (await post_video(second_replica, short_clip, acme)).status_code == 202
    # The third upload is read (its Content-Length fits the multipart slack), then refused.
    assert_rate_limited(await post_video(service.client, short_clip, acme), "bytes_per_day", 43_200)
    assert len(service.stored_files()) == 2
    assert list((service.settings.videos_dir / ".tmp").iterdir()) == []
    # A declared body far over what is left is refused before it is read.
    huge = await second_replica.post(
        "/v1/jobs",
        content=bytes(8 * 1024 * 1024),
        headers=acme | {"content-type": "multipart/form-data; boundary=x"},
    )
    assert_rate_limited(huge, "bytes_per_day", 43_200)
    clock.advance(43_200)  # the next UTC day
    assert (await post_video(second_replica, short_clip, acme)).status_code == 202


UNKNOWN_ID = "00000000-0000-0000-0000-000000000000"


def v1_operations(service: Service) -> list[tuple[str, str]]:
    """(method, path) of every /v1 operation in the OpenAPI document, so new routes are covered."""
    paths = service.app.openapi()["paths"]
    return [
        (method.upper(), path.replace("{job_id}", UNKNOWN_ID))
        for path, item in paths.items()
        if path.startswith("/v1/")
        for method in item
    ]


@pytest.mark.settings(tenant_requests_per_second=2)
async def test_every_v1_route_counts_each_request_exactly_once(service: Service) -> None:
    clock = FakeClock(NOON)
    freeze(clock, service.app)
    operations = v1_operations(service)
    assert len(operations) >= 15
    for method, path in operations:
        clock.advance(1.0)  # a fresh window per route
        statuses = [(await service.client.request(method, path)).status_code for _ in range(3)]
        assert 429 not in statuses[:2], (method, path, statuses)  # counted twice: the second is refused
        assert statuses[2] == 429, (method, path, statuses)  # not counted: never refused
    assert (await service.client.get("/metrics")).status_code == 200


@pytest.mark.settings(auth_enabled=True, tenant_requests_per_second=1)
async def test_a_missing_key_is_a_401_and_is_not_counted(service: Service) -> None:
    freeze(FakeClock(NOON), service.app)
    acme = bearer(new_key(service.app, "acme"))
    for method, path in v1_operations(service):
        response = await service.client.request(method, path)
        assert response.status_code == 401, (method, path)  # HEAD answers have no problem body
        assert response.headers["www-authenticate"].startswith("Bearer ")
    assert (await service.client.get("/v1/jobs", headers=acme)).status_code == 200
    assert_rate_limited(await service.client.get("/v1/jobs", headers=acme), "requests_per_second", 1)
    assert_problem(await service.client.get("/v1/jobs"), 401, "unauthorized")
