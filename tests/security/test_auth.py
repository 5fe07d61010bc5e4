"""API keys: 401s with a Bearer challenge, tenants that cannot see each other's jobs, CORS."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from app.api.auth import startup_notice
from app.settings import Settings
from app.store.schema import api_keys
from tests.integration.conftest import Service, assert_problem
from tests.security.keys import bearer, new_key

pytestmark = pytest.mark.anyio
auth_on = pytest.mark.settings(auth_enabled=True)
UNKNOWN_ID = "00000000-0000-0000-0000-000000000000"


async def post_video(service: Service, path: Path, headers: dict[str, str], **data: str) -> httpx.Response:
    with path.open("rb") as fh:
        return await service.client.post(
            "/v1/jobs", files={"file": (path.name, fh, "video/mp4")}, data=data, headers=headers
        )


def assert_unauthorized(response: httpx.Response, *, invalid_token: bool) -> None:
    assert_problem(response, 401, "unauthorized")
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert ('error="invalid_token"' in challenge) is invalid_token


@auth_on
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/jobs"),
        ("POST", "/v1/jobs"),
        ("GET", f"/v1/jobs/{UNKNOWN_ID}"),
        ("GET", f"/v1/jobs/{UNKNOWN_ID}/results"),
        ("GET", f"/v1/jobs/{UNKNOWN_ID}/video"),
        ("DELETE", f"/v1/jobs/{UNKNOWN_ID}"),
        ("GET", "/v1/models"),
    ],
)
async def test_every_v1_route_needs_a_key(service: Service, method: str, path: str) -> None:
    assert_unauthorized(await service.client.request(method, path), invalid_token=False)


@auth_on
@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer vas_not-a-real-key"},
        {"Authorization": "Bearer something-else"},
        {"X-API-Key": "vas_" + "A" * 43},
        {"Authorization": "Bearer " + "x" * 5000},
    ],
    ids=["unknown", "foreign-format", "x-api-key-unknown", "huge"],
)
async def test_invalid_keys_are_401_invalid_token(service: Service, headers: dict[str, str]) -> None:
    assert_unauthorized(await service.client.get("/v1/jobs", headers=headers), invalid_token=True)


@auth_on
@pytest.mark.parametrize(
    "headers",
    [{"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}, {"X-API-Key": ""}],
    ids=["basic", "bearer-without-key", "empty-x-api-key"],
)
async def test_no_usable_key_is_401(service: Service, headers: dict[str, str]) -> None:
    assert_unauthorized(await service.client.get("/v1/jobs", headers=headers), invalid_token=False)


@auth_on
async def test_bearer_and_x_api_key_both_work_and_revocation_is_immediate(service: Service) -> None:
    secret = new_key(service.app, "acme")
    assert (await service.client.get("/v1/jobs", headers=bearer(secret))).status_code == 200
    assert (await service.client.get("/v1/jobs", headers={"X-API-Key": secret})).status_code == 200
    assert (await service.client.get("/v1/models", headers={"X-API-Key": secret})).status_code == 200
    (key,) = service.app.state.keys.list_keys("acme")
    service.app.state.keys.revoke_key(key.id)
    assert_unauthorized(await service.client.get("/v1/jobs", headers=bearer(secret)), invalid_token=True)
    assert_unauthorized(
        await service.client.get("/v1/jobs", headers={"X-API-Key": secret}), invalid_token=True
    )


@auth_on
async def test_probes_and_metrics_need_no_key(service: Service) -> None:
    assert (await service.client.get("/healthz")).status_code == 200
    assert (await service.client.get("/readyz")).status_code == 200
    assert (await service.client.get("/metrics")).status_code == 200


@auth_on
async def test_only_the_hash_of_a_key_is_stored(service: Service) -> None:
    secret = new_key(service.app, "acme", "ci")
    with service.app.state.store.engine.connect() as conn:
        rows = conn.execute(select(api_keys)).all()
    assert len(rows) == 1
    stored = " ".join(str(v) for v in rows[0])
    assert secret not in stored and secret[12:] not in stored
    assert re.fullmatch(r"[0-9a-f]{64}", rows[0]._mapping["key_hash"])


@auth_on
async def test_other_tenants_jobs_are_indistinguishable_from_unknown_ids(
    service: Service, short_clip: Path
) -> None:
    alice, mallory = bearer(new_key(service.app, "alice")), bearer(new_key(service.app, "mallory"))
    created = await post_video(service, short_clip, alice, top_k="1")
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    assert service.new_worker().run_once() is True

    for method, suffix in await _job_routes(service):  # every route under /v1/jobs/{job_id}
        theirs = await service.client.request(method, f"/v1/jobs/{job_id}{suffix}", headers=mallory)
        unknown = await service.client.request(method, f"/v1/jobs/{UNKNOWN_ID}{suffix}", headers=mallory)
        assert theirs.status_code == unknown.status_code == 404, (method, suffix)
        if method == "HEAD":
            continue
        assert theirs.json() | {"detail": ""} == unknown.json() | {"detail": ""}
        assert theirs.json()["detail"].replace(job_id, UNKNOWN_ID) == unknown.json()["detail"]
        assert set(theirs.headers) == set(unknown.headers)

    assert (await service.client.get("/v1/jobs", headers=mallory)).json()["items"] == []
    listed = await service.client.get("/v1/jobs", headers=mallory, params={"status": "succeeded"})
    assert listed.json()["items"] == []
    mine = (await service.client.get(f"/v1/jobs/{job_id}", headers=alice)).json()
    assert mine["status"] == "succeeded", "mallory's DELETE must not have touched it"
    assert (await service.client.get(f"/v1/jobs/{job_id}/results", headers=alice)).status_code == 200
    assert service.stored_files() == [job_id]


async def _job_routes(service: Service) -> list[tuple[str, str]]:
    """(method, path suffix) of every operation on one job, from the OpenAPI document;
    DELETE last (it would remove the job)."""
    paths = (await service.client.get("/openapi.json")).json()["paths"]
    routes = [
        (method.upper(), path.removeprefix("/v1/jobs/{job_id}"))
        for path, operations in paths.items()
        if path.startswith("/v1/jobs/{job_id}")
        for method in operations
    ]
    assert ("GET", "/results") in routes and ("GET", "/video") in routes and len(routes) >= 5
    return sorted(routes, key=lambda route: route[0] == "DELETE")


@auth_on
async def test_idempotency_keys_are_per_tenant(service: Service, short_clip: Path) -> None:
    alice, bob = bearer(new_key(service.app, "alice")), bearer(new_key(service.app, "bob"))
    first = await post_video(service, short_clip, alice | {"Idempotency-Key": "k1"})
    replay = await post_video(service, short_clip, alice | {"Idempotency-Key": "k1"})
    other = await post_video(service, short_clip, bob | {"Idempotency-Key": "k1"})
    assert (first.status_code, replay.status_code, other.status_code) == (202, 200, 202)
    assert replay.json()["id"] == first.json()["id"] != other.json()["id"]


@auth_on
async def test_two_keys_of_one_tenant_share_its_jobs(service: Service, short_clip: Path) -> None:
    one, two = bearer(new_key(service.app, "acme", "ci")), bearer(new_key(service.app, "acme", "laptop"))
    job_id = (await post_video(service, short_clip, one)).json()["id"]
    assert (await service.client.get(f"/v1/jobs/{job_id}", headers=two)).status_code == 200


async def test_auth_off_serves_the_default_tenant(service: Service, short_clip: Path) -> None:
    job_id = (await post_video(service, short_clip, {})).json()["id"]
    assert service.store.get_job(job_id, "default") is not None
    # A key is neither needed nor checked.
    assert (await service.client.get("/v1/jobs", headers=bearer("vas_whatever"))).status_code == 200


async def test_openapi_declares_both_key_schemes(service: Service) -> None:
    schema = (await service.client.get("/openapi.json")).json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["HTTPBearer"]["description"],
    }
    assert schemes["APIKeyHeader"]["in"] == "header" and schemes["APIKeyHeader"]["name"] == "X-API-Key"
    post = schema["paths"]["/v1/jobs"]["post"]
    assert {"401", "429"} <= set(post["responses"])


@pytest.mark.settings(auth_enabled=True, cors_allow_origins="https://app.example, https://other.example/")
async def test_cors_allows_configured_origins_only(service: Service) -> None:
    preflight = await service.client.options(
        "/v1/jobs",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, idempotency-key",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-credentials" not in preflight.headers
    denied = await service.client.options(
        "/v1/jobs", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert denied.status_code == 400 and "access-control-allow-origin" not in denied.headers
    # Errors carry CORS headers too, so a browser app can read the 401.
    refused = await service.client.get("/v1/jobs", headers={"Origin": "https://other.example"})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == "https://other.example"
    exposed = refused.headers["access-control-expose-headers"]
    assert {"WWW-Authenticate", "Retry-After", "Location", "X-Next-Cursor"} <= set(exposed.split(", "))
    # Every method of the API can be called from a page: PUT /v1/webhook included.
    for method, path in (("PUT", "/v1/webhook"), ("DELETE", f"/v1/jobs/{UNKNOWN_ID}"), ("GET", "/v1/jobs")):
        allowed = await service.client.options(
            path,
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": "x-api-key, content-type",
            },
        )
        assert allowed.status_code == 200, (method, allowed.text)
        assert method in allowed.headers["access-control-allow-methods"].split(", ")
    put = await service.client.put(
        "/v1/webhook", json={"default_url": None}, headers={"Origin": "https://app.example"}
    )
    assert put.status_code == 401 and put.headers["access-control-allow-origin"] == "https://app.example"


async def test_cors_is_off_by_default(service: Service) -> None:
    response = await service.client.get("/v1/jobs", headers={"Origin": "https://app.example"})
    assert response.status_code == 200 and "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    ("overrides", "level", "words"),
    [
        ({"auth_enabled": True, "host": "0.0.0.0"}, logging.INFO, "authentication on"),
        ({"host": "127.0.0.1"}, logging.WARNING, "authentication is off"),
        ({"host": "0.0.0.0"}, logging.WARNING, "0.0.0.0 is not loopback"),
    ],
)
def test_serve_says_how_it_authenticates(overrides: dict[str, object], level: int, words: str) -> None:
    notice_level, message = startup_notice(Settings(**overrides))  # type: ignore[arg-type]
    assert notice_level == level and words in message
