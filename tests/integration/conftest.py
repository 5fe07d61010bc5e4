"""An app on a real SQLite file in a temp dir, driven through the real ASGI stack with httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.api.app import create_app
from app.settings import Settings
from app.store.base import JobStore
from app.store.migrate import upgrade
from app.worker.runner import Worker


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_settings(tmp_path: Path, models_dir: Path, **overrides: Any) -> Settings:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    values: dict[str, Any] = {
        "data_dir": data,
        "models_dir": models_dir,
        "default_model": "x3d_xs",
        "embedded_worker": False,
        "lease_seconds": 30.0,
        "batch_size": 4,
    }
    values.update(overrides)
    settings = Settings(**values)
    upgrade(settings.resolved_database_url)
    return settings


@dataclass
class Service:
    settings: Settings
    app: FastAPI
    client: httpx.AsyncClient
    new_worker: Callable[..., Worker]

    @property
    def store(self) -> JobStore:
        store: JobStore = self.app.state.store
        return store

    def stored_files(self) -> list[str]:
        videos = self.settings.videos_dir
        return sorted(p.name for p in videos.rglob("*") if p.is_file()) if videos.exists() else []


def close_app(app: FastAPI) -> None:
    """What the lifespan's shutdown does (ASGITransport runs no lifespan): stop the upload
    probe's spare child and thread, then close the store."""
    app.state.prober.close()
    app.state.store.close()


_ANALYZERS: dict[tuple[object, ...], Any] = {}


def shared_analyzer(settings: Settings) -> Any:
    """One Analyzer (and so one model cache) per models dir, as a long-lived worker would have;
    and per media limits, which a test may set (``pytest.mark.settings``) for the decode too."""
    from app.analysis.engine import Analyzer
    from app.analysis.limits import MediaLimits

    key = (
        str(settings.models_dir),
        settings.batch_size,
        MediaLimits.from_settings(settings),
        tuple(settings.allowed_format_list),
    )
    if key not in _ANALYZERS:
        _ANALYZERS[key] = Analyzer.from_settings(settings)
    return _ANALYZERS[key]


def app_worker(app: FastAPI, **kwargs: Any) -> Worker:
    """A worker on ``app``'s store and blobs, with the shared analyzer for its settings."""
    settings = app.state.settings
    return Worker(
        store=app.state.store,
        blobs=app.state.blobs,
        settings=settings,
        analyzer_factory=lambda: shared_analyzer(settings),
        **kwargs,
    )


async def finished_job(
    tmp_path: Path, models: Path, video: Path, data: dict[str, str], *formats: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """Upload ``video`` through the app (ASGI, real SQLite and blob storage), run one worker
    pass, and return the succeeded job's JSON results and its results in each of ``formats``."""
    settings = make_settings(tmp_path, models, default_model="demo_motion")
    app = create_app(settings)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            with video.open("rb") as fh:
                response = await client.post(
                    "/v1/jobs", files={"file": (video.name, fh, "video/mp4")}, data=data
                )
            assert response.status_code == 202, response.text
            job_id = response.json()["id"]
            assert app_worker(app).run_once()
            job = (await client.get(f"/v1/jobs/{job_id}")).json()
            assert job["status"] == "succeeded", job
            results = (await client.get(f"/v1/jobs/{job_id}/results")).json()
            texts = {f: (await client.get(f"/v1/jobs/{job_id}/results?format={f}")).text for f in formats}
    finally:
        close_app(app)
    return results, texts


@pytest.fixture
async def service(
    tmp_path: Path, zoo_models_dir: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Service]:
    marker = request.node.get_closest_marker("settings")
    overrides = marker.kwargs if marker else {}
    settings = make_settings(tmp_path, zoo_models_dir, **overrides)
    app = create_app(settings)

    def new_worker(**kwargs: Any) -> Worker:
        return Worker(
            store=app.state.store,
            blobs=app.state.blobs,
            settings=settings,
            analyzer_factory=lambda: shared_analyzer(settings),
            **kwargs,
        )

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield Service(settings, app, client, new_worker)
    close_app(app)


async def submit(service: Service, path: Path, **fields: Any) -> httpx.Response:
    data = {k: str(v) for k, v in fields.items()}
    with path.open("rb") as fh:
        return await service.client.post("/v1/jobs", files={"file": (path.name, fh, "video/mp4")}, data=data)


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail", "code"} <= body.keys()
    assert body["status"] == status and body["code"] == code, body
    return body
