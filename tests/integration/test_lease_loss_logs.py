"""A job canceled while it runs loses its lease as expected: INFO "job canceled", no warning.
A lease taken over by another worker (the first one's expired) is still a WARNING."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.domain import JobStatus
from tests.integration.conftest import Service, submit
from tests.media import write_video

pytestmark = [pytest.mark.anyio, pytest.mark.settings(batch_size=1)]


async def start_long_job(service: Service, videos_dir: Path) -> tuple[str, threading.Thread]:
    clip = write_video(videos_dir / "long-for-logs.mp4", seconds=20.0, width=96, height=72)
    job_id: str = (await submit(service, clip, segment_seconds=0.5)).json()["id"]
    thread = threading.Thread(target=service.new_worker().run_once)
    thread.start()
    for _ in range(600):
        job = service.store.get_job(job_id)
        assert job is not None
        if job.progress > 0:
            return job_id, thread
        await asyncio.sleep(0.05)
    raise AssertionError("the job made no progress")


def worker_records(caplog: pytest.LogCaptureFixture, job_id: str) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name.startswith("app.worker") and getattr(r, "job_id", None) == job_id
    ]


async def test_cancel_while_running_is_logged_as_info(
    service: Service, videos_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    job_id, thread = await start_long_job(service, videos_dir)
    assert (await service.client.delete(f"/v1/jobs/{job_id}")).status_code == 204  # cancels it
    job = service.store.get_job(job_id)
    assert job is not None and job.status is JobStatus.CANCELED
    thread.join(timeout=120)
    assert not thread.is_alive()
    records = worker_records(caplog, job_id)
    assert [r.getMessage() for r in records if r.levelno >= logging.WARNING] == []
    assert "job canceled: analysis stopped" in [r.getMessage() for r in records if r.levelno == logging.INFO]


async def test_a_lease_taken_over_by_another_worker_is_a_warning(
    service: Service, videos_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    job_id, thread = await start_long_job(service, videos_dir)
    engine = sa.create_engine(service.settings.resolved_database_url)
    with engine.begin() as conn:  # the lease lapses (as if the worker had stalled) ...
        conn.execute(sa.text("UPDATE jobs SET lease_expires_at = 0 WHERE id = :id"), {"id": job_id})
    engine.dispose()
    usurper = service.store.claim("another-worker", 30.0)  # ... and another worker takes the job
    assert usurper is not None and usurper.job.id == job_id
    thread.join(timeout=120)
    assert not thread.is_alive()
    warnings = [r.getMessage() for r in worker_records(caplog, job_id) if r.levelno == logging.WARNING]
    assert warnings == ["job abandoned: lease lost"]
    service.store.release(usurper)
