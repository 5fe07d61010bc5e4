"""Schemathesis against the app's own OpenAPI document: generated requests (valid and not) on
every operation must never get a 5xx, and every response must match the schema (status
code, content type, headers, body). Authentication is on; the generated cases carry a valid
key (schemathesis also tries them without one, expecting the documented 401). A small
valid video is among the values the upload's ``file`` part can take."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
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
from tests.integration.conftest import make_settings
from tests.media import write_video

VIDEO_FORMAT = "vas-test-video"
# A schema-valid upload may still be refused for its content (415: not a video) or for
# what a schema cannot say (start < end: 422); every other check runs.
EXCLUDED_CHECKS = [checks.positive_data_acceptance]
MAX_EXAMPLES = 40


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
    app.state.store.close()


async def _seed(app: Any, headers: dict[str, str], video: bytes) -> list[str]:
    """One succeeded job (it has results and a video) and one queued job, for the
    operations on ``/v1/jobs/{job_id}`` to find."""
    from app.worker.runner import Worker
    from tests.integration.conftest import shared_analyzer

    ids = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fuzz") as client:
        for _ in range(2):
            response = await client.post("/v1/jobs", files={"file": ("v.mp4", video)}, headers=headers)
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
    settings = app.state.settings
    worker = Worker(
        store=app.state.store,
        blobs=app.state.blobs,
        settings=settings,
        analyzer_factory=lambda: shared_analyzer(settings),
    )
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

        @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
        @settings(
            max_examples=MAX_EXAMPLES,
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
            case.call_and_validate(headers=fuzz_app.state.fuzz_headers, excluded_checks=EXCLUDED_CHECKS)

        try:
            check()
        except Unsatisfiable:  # negative mode on an operation without inputs to break
            assert mode is GenerationMode.NEGATIVE
        except Exception as exc:  # collect, so one run shows every failing operation
            failures[f"{operation.method.upper()} {operation.path} {path_parameters or ''}"] = (
                f"{type(exc).__name__}: {exc}"[:3000]
            )
    assert not failures, "\n\n".join(f"{op}\n{text}" for op, text in failures.items())
