"""Schemathesis against the app's own OpenAPI document: generated requests (valid and not) on
every operation must never get a 5xx, and every response must match the schema (status
code, content type, headers, body). Authentication is on; the main runs carry a valid key,
shorter runs send no key or an unknown one (each answer must be the documented 401 with
``WWW-Authenticate``) and run against low per-tenant limits (the 429s, with ``Retry-After``,
are checked against the schema too). A small valid video is among the values the upload's
``file`` part can take."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import checks
from schemathesis.generation import GenerationMode
from schemathesis.openapi import from_dict

from app.api.app import create_app
from tests.integration.conftest import close_app, make_settings
from tests.media import write_video

VIDEO_FORMAT = "vas-test-video"
# A schema-valid upload may still be refused for its content (415: not a video) or for
# what a schema cannot say (start < end: 422); every other check runs.
EXCLUDED_CHECKS = [checks.positive_data_acceptance]
MAX_EXAMPLES = 40
SHORT_RUN_EXAMPLES = 12  # the no-key, bad-key and rate-limited runs


def _with_video_format(raw: dict[str, Any]) -> dict[str, Any]:
    """The served schema, with the upload's binary ``file`` drawn from VIDEO_FORMAT."""
    schema = copy.deepcopy(raw)
    body = schema["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    body["properties"]["file"] = {"type": "string", "format": VIDEO_FORMAT}
    return schema


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory, zoo_models_dir: Path) -> Iterator[Any]:
    root = tmp_path_factory.mktemp("fuzz")
    video = write_video(root / "tiny.mp4", seconds=0.5, fps=10, width=64, height=48).read_bytes()
    schemathesis.openapi.format(
        VIDEO_FORMAT, st.sampled_from([video, video[: len(video) // 2], b"not a video", b"\x00" * 64])
    )
    app = create_app(
        make_settings(
            root,
            zoo_models_dir,
            auth_enabled=True,
            max_upload_bytes=1_000_000,
            events_max_seconds=0.2,  # SSE streams on queued jobs end quickly
            events_poll_interval=0.05,
        )
    )
    _, secret = app.state.keys.create_key("fuzz", "schemathesis")
    app.state.fuzz_headers = headers = {"Authorization": f"Bearer {secret}"}
    app.state.seeded = anyio.run(_seed, app, headers, video)
    yield app
    close_app(app)


async def _seed(app: Any, headers: dict[str, str], video: bytes) -> list[str]:
    """One succeeded job (it has results and a video) and one queued job, for the
    operations on ``/v1/jobs/{job_id}`` to find."""
    from tests.integration.conftest import app_worker

    ids = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fuzz") as client:
        for _ in range(2):
            response = await client.post("/v1/jobs", files={"file": ("v.mp4", video)}, headers=headers)
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
    worker = app_worker(app)
    assert worker.run_once() is True
    assert app.state.store.get_job(ids[0]).status.value == "succeeded"
    return ids


@pytest.fixture(scope="module")
def api_schema(fuzz_app: Any) -> Any:
    transport = httpx.ASGITransport(app=fuzz_app)

    async def fetch() -> dict[str, Any]:
        async with httpx.AsyncClient(transport=transport, base_url="http://fuzz") as client:
            document: dict[str, Any] = (await client.get("/openapi.json")).json()
            return document

    loaded = from_dict(_with_video_format(anyio.run(fetch)))
    loaded.app = _without_lifespan(fuzz_app)
    return loaded


def _without_lifespan(app: Any) -> Any:
    """The test client enters and leaves the app's lifespan around every call; leaving it
    puts the app into drain mode (503), as a real shutdown should. Answer lifespan here."""

    async def wrapper(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await app(scope, receive, send)

    return wrapper


def _fuzz(
    operation: Any,
    mode: GenerationMode,
    path_parameters: dict[str, str] | None,
    headers: dict[str, str],
    max_examples: int,
    inspect: Callable[[Any], None] | None = None,
) -> str | None:
    """Run one operation's generated cases; the failure as text, or None. ``inspect`` gets
    every response after schemathesis' own checks passed."""

    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    @settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case: Any) -> None:
        if case.headers and "idempotency-key" in {k.lower() for k in case.headers}:
            # A replayed key answers 200 with the first job before the body is read
            # (README: retries are cheap), which the negative checks would call a
            # schema-violating request accepted. One key per generated request.
            case.headers = {k: v for k, v in case.headers.items() if k.lower() != "idempotency-key"}
            case.headers["Idempotency-Key"] = uuid.uuid4().hex
        response = case.call_and_validate(headers=headers, excluded_checks=EXCLUDED_CHECKS)
        if inspect is not None:
            inspect(response)

    try:
        check()
    except Unsatisfiable:  # negative mode on an operation without inputs to break
        assert mode is GenerationMode.NEGATIVE
    except Exception as exc:  # collected, so one run shows every failing operation
        return f"{type(exc).__name__}: {exc}"[:3000]
    return None


def _report(failures: dict[str, str]) -> str:
    return "\n\n".join(f"{op}\n{text}" for op, text in failures.items())


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_api_conforms_to_its_openapi(api_schema: Any, fuzz_app: Any, mode: GenerationMode) -> None:
    """Every operation, ``MAX_EXAMPLES`` generated cases each; all failures reported together.
    (Schemathesis' own lazy pytest integration does not run on this pytest version.)"""
    failures: dict[str, str] = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 6
    runs = []
    for operation in sorted(operations, key=lambda op: op.method.upper() == "DELETE"):
        runs.append((operation, None))
        if "{job_id}" in operation.path:  # also on jobs that exist
            runs += [(operation, {"job_id": job_id}) for job_id in fuzz_app.state.seeded]
    for operation, path_parameters in runs:
        failure = _fuzz(operation, mode, path_parameters, fuzz_app.state.fuzz_headers, MAX_EXAMPLES)
        if failure:
            failures[f"{operation.method.upper()} {operation.path} {path_parameters or ''}"] = failure
    assert not failures, _report(failures)


def _assert_unauthorized(response: Any) -> None:
    assert response.status_code == 401, (response.status_code, response.text)
    assert response.headers["www-authenticate"][0].startswith("Bearer ")


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer vas_unknown"}, {"X-API-Key": "vas_unknown"}],
    ids=["no-key", "bad-bearer", "bad-x-api-key"],
)
def test_without_a_valid_key_every_v1_operation_is_a_documented_401(
    api_schema: Any, fuzz_app: Any, headers: dict[str, str]
) -> None:
    """Valid requests (on unknown and existing jobs) without a usable key: a 401 with a
    Bearer challenge and a body that matches the schema, from every /v1 operation."""
    failures: dict[str, str] = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    v1 = [operation for operation in operations if operation.path.startswith("/v1/")]
    assert len(v1) >= 6
    for operation in v1:
        runs: list[dict[str, str] | None] = [None]
        if "{job_id}" in operation.path:
            runs.append({"job_id": fuzz_app.state.seeded[0]})
        for path_parameters in runs:
            failure = _fuzz(
                operation,
                GenerationMode.POSITIVE,
                path_parameters,
                headers,
                SHORT_RUN_EXAMPLES,
                inspect=_assert_unauthorized,
            )
            if failure:
                failures[f"{operation.method.upper()} {operation.path} {path_parameters or ''}"] = failure
    assert not failures, _report(failures)


@pytest.fixture(scope="module")
def throttled_schema(
    api_schema: Any, tmp_path_factory: pytest.TempPathFactory, zoo_models_dir: Path
) -> Iterator[tuple[Any, dict[str, str]]]:
    """The same document, served by an app with low per-tenant limits (one tenant's key)."""
    app = create_app(
        make_settings(
            tmp_path_factory.mktemp("throttled"),
            zoo_models_dir,
            auth_enabled=True,
            max_upload_bytes=1_000_000,
            tenant_requests_per_second=3,
            tenant_max_active_jobs=1,
            tenant_bytes_per_day=20_000,
            events_max_seconds=0.2,
            events_poll_interval=0.05,
        )
    )
    _, secret = app.state.keys.create_key("throttled", "schemathesis")
    loaded = from_dict(copy.deepcopy(api_schema.raw_schema))
    loaded.app = _without_lifespan(app)
    yield loaded, {"Authorization": f"Bearer {secret}"}
    close_app(app)


def test_per_tenant_limits_answer_documented_429s(throttled_schema: tuple[Any, dict[str, str]]) -> None:
    """Against 3 requests/s, 1 active job and 20 kB/day, many generated requests are
    refused: each 429 must match the schema (body, ``Retry-After``) and agree with itself."""
    schema, headers = throttled_schema
    refused: list[str] = []

    def inspect(response: Any) -> None:
        if response.status_code != 429:
            return
        retry_after = int(response.headers["retry-after"][0])
        assert retry_after >= 1
        if response.request.method == "HEAD":  # headers only
            refused.append("head")
            return
        body = response.json()
        assert body["code"] == "rate_limited" and body["limit"], body
        assert body["retry_after"] == retry_after, body
        refused.append(body["limit"])

    failures: dict[str, str] = {}
    for operation in [result.ok() for result in schema.get_all_operations()]:
        failure = _fuzz(
            operation, GenerationMode.POSITIVE, None, headers, SHORT_RUN_EXAMPLES, inspect=inspect
        )
        if failure:
            failures[f"{operation.method.upper()} {operation.path}"] = failure
    assert not failures, _report(failures)
    assert "requests_per_second" in refused, "the rate limit was never reached; the run proves nothing"
