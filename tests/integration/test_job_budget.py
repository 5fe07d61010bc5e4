"""Every job has a wall-clock budget: past it the job fails ``timeout`` (not retried) and the
worker moves on. Real app, SQLite, decoder child and the shipped demo model (offline)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.analysis.budget import (
    SHOT_COST,
    SHOT_FRAMES_PER_SECOND,
    SHOT_VIDEO_FPS,
    UNKNOWN_COST,
    JobBudget,
    model_cost,
)
from app.analysis.catalog import load_catalog
from app.analysis.engine import Analyzer
from app.api.app import create_app
from app.settings import Settings
from app.worker.multi import MultiJobWorker
from app.worker.runner import Worker
from tests.conftest import REPO
from tests.integration.conftest import close_app, make_settings
from tests.media import write_video

pytestmark = pytest.mark.anyio

MODELS = REPO / "models"
BUDGET = 5.0
RUNAWAY = {"segment_seconds": "0.01", "clips_per_segment": "10", "crops": "3"}
"""20 s of video at these options: 2,000 segments, 60,000 views; minutes of work, far past BUDGET."""


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("budget-videos")
    return {
        "long": write_video(folder / "long.mp4", seconds=20.0, fps=30, width=96, height=72),
        "short": write_video(folder / "short.mp4", seconds=1.0, fps=30, width=96, height=72),
    }


class Budgeted:
    def __init__(self, settings: Settings, client: httpx.AsyncClient, app: Any) -> None:
        self.settings, self.client, self.app = settings, client, app

    async def submit(self, path: Path, **fields: str) -> str:
        with path.open("rb") as fh:
            response = await self.client.post(
                "/v1/jobs", files={"file": (path.name, fh, "video/mp4")}, data=fields
            )
        assert response.status_code == 202, response.text
        job_id: str = response.json()["id"]
        return job_id

    async def job(self, job_id: str) -> dict[str, Any]:
        body: dict[str, Any] = (await self.client.get(f"/v1/jobs/{job_id}")).json()
        return body

    def worker(self, cls: type[Worker]) -> Any:
        analyzer = Analyzer.from_settings(self.settings)  # its own: the budget is in it
        return cls(
            store=self.app.state.store,
            blobs=self.app.state.blobs,
            settings=self.settings,
            analyzer_factory=lambda: analyzer,
        )


@asynccontextmanager
async def budgeted(tmp_path: Path, **overrides: Any) -> AsyncIterator[Budgeted]:
    settings = make_settings(
        tmp_path,
        MODELS,
        default_model="demo_motion",
        job_timeout_base_seconds=BUDGET,
        job_timeout_per_video_second=0.0,
        poll_interval=0.05,
        **overrides,
    )
    app = create_app(settings)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            yield Budgeted(settings, client, app)
    finally:
        close_app(app)


def assert_timed_out(job: dict[str, Any], budget: float) -> None:
    assert job["status"] == "failed" and job["attempts"] == 1, job
    assert job["error"]["code"] == "timeout", job["error"]
    message = job["error"]["message"]
    assert f"its wall-clock budget is {budget:.1f} s" in message and "job_timeout_base_seconds" in message


async def test_a_runaway_job_fails_timeout_at_once_and_the_worker_takes_the_next(
    tmp_path: Path, videos: dict[str, Path]
) -> None:
    async with budgeted(tmp_path) as service:
        runaway = await service.submit(videos["long"], **RUNAWAY)
        fine = await service.submit(videos["short"])
        worker = service.worker(Worker)
        started = time.monotonic()
        assert worker.run_once()
        took = time.monotonic() - started
        assert_timed_out(await service.job(runaway), BUDGET)
        assert took < BUDGET + 20, f"the worker held the runaway job {took:.1f} s"
        assert worker.run_once()
        assert (await service.job(fine))["status"] == "succeeded"
        assert worker.run_once() is False, "not retried: nothing left in the queue"


async def test_a_worker_with_jobs_in_flight_times_out_one_and_finishes_the_others(
    tmp_path: Path, videos: dict[str, Path]
) -> None:
    async with budgeted(tmp_path, worker_jobs_in_flight=2) as service:
        runaway = await service.submit(videos["long"], **RUNAWAY)
        others = [await service.submit(videos["short"]) for _ in range(2)]
        worker: MultiJobWorker = service.worker(MultiJobWorker)
        worker.drain()
        assert_timed_out(await service.job(runaway), 2 * BUDGET)  # two jobs share the worker
        for job_id in others:
            assert (await service.job(job_id))["status"] == "succeeded"


def test_the_budget_scales_with_video_seconds_model_cost_views_and_jobs_in_flight(tmp_path: Path) -> None:
    catalog = load_catalog(MODELS)
    x3d_s, slowfast, demo = (catalog.get(n) for n in ("x3d_s", "slowfast_r101", "demo_motion"))
    assert model_cost(x3d_s) == 1.0 and model_cost(catalog.get("x3d_xs")) == 1.0  # cheaper counts as 1
    assert model_cost(slowfast) == pytest.approx(127.2 / 3)
    assert demo.gflops is None and model_cost(demo) == UNKNOWN_COST
    budget = JobBudget(base_seconds=600, per_video_second=5, jobs_in_flight=2)
    used = {"start": 10.0, "end": 70.0, "clips_per_segment": 2, "crops": 3}
    assert budget.seconds(x3d_s, used) == (600 + 5 * 60 * 1 * 6) * 2
    assert budget.seconds(slowfast, used) == pytest.approx((600 + 5 * 60 * 127.2 / 3 * 6) * 2)
    defaults = JobBudget.from_settings(Settings(data_dir=tmp_path))
    one_hour = {"start": 0.0, "end": 3600.0, "clips_per_segment": 1, "crops": 1}
    assert defaults.seconds(x3d_s, one_hour) == 600 + 5 * 3600, "5 h for an hour of X3D-S video"


def test_shot_detection_adds_its_per_frame_cost_and_covers_the_detector(tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    np = pytest.importorskip("numpy")
    from app.analysis.shots import ShotDetector

    x3d_s = load_catalog(MODELS).get("x3d_s")
    budget = JobBudget(base_seconds=600, per_video_second=5, jobs_in_flight=2)
    used = {"start": 10.0, "end": 70.0, "clips_per_segment": 2, "crops": 3}
    plain = budget.seconds(x3d_s, {**used, "detect_shots": False})
    assert plain == budget.seconds(x3d_s, used) == (600 + 5 * 60 * 6) * 2
    assert SHOT_COST == SHOT_VIDEO_FPS / SHOT_FRAMES_PER_SECOND == 3.0
    with_shots = budget.seconds(x3d_s, {**used, "detect_shots": True})
    assert with_shots - plain == pytest.approx(5 * 60 * SHOT_COST * 2)
    message = budget.deadline(x3d_s, {**used, "detect_shots": True}, 0.0).budget
    assert "+ shot detection 3)" in message and f"{with_shots:.1f} s" in message
    assert "shot detection" not in budget.deadline(x3d_s, used, 0.0).budget

    # The default budget's share for shots covers the real detector on a real decoded video
    # (2 s at 25 fps: one 100-frame window), frame for frame, even on a crowded machine.
    clip = write_video(tmp_path / "shots.mp4", seconds=2.0, fps=25, width=96, height=72)
    with av.open(str(clip)) as container:
        small = [f.to_ndarray(width=48, height=27, format="rgb24") for f in container.decode(video=0)]
        times = [i / 25 for i in range(len(small))]
    detector = ShotDetector()
    detector.add(np.stack(small), times)
    detector.finish(2.0)
    assert detector.frames == 50 and detector.seconds > 0
    per_frame_allowed = Settings(data_dir=tmp_path).job_timeout_per_video_second * SHOT_COST / SHOT_VIDEO_FPS
    measured = detector.seconds / detector.frames
    assert measured < per_frame_allowed, f"{measured:.3f} s per frame, {per_frame_allowed:.3f} s allowed"
