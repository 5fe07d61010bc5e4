"""A full disk, for real: the data dir (videos and the SQLite file) on a 20 MB tmpfs, filled.

Uploads answer ``507 insufficient_storage`` with Retry-After and keep nothing; DELETE still
works (it is how space is freed); /readyz names the storage and leaves no probe file; the
worker pauses with one line that says what to do instead of warning about the database
every few seconds. Mounting needs root: without it these tests skip (or fail, in CI).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.api.app import create_app
from app.domain import JobStatus
from app.errors import InsufficientStorage
from app.settings import Settings
from app.store.base import JobStore
from app.store.sql import SqlJobStore
from app.worker.runner import Worker
from tests.contract.test_job_store import new_job
from tests.integration.conftest import make_settings, shared_analyzer
from tests.live import serving
from tests.media import write_video
from tests.mounts import tmpfs

DISK = "20m"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path/data`` on its own 20 MB tmpfs."""
    with tmpfs(tmp_path / "data", f"size={DISK}") as data:
        yield data


def fill(disk: Path) -> Path:
    """Write a file until the disk is full, to the last page."""
    filler = disk / "filler"
    with filler.open("ab", buffering=0) as fh:
        for size in (1 << 20, 1 << 12, 1):
            with pytest.raises(OSError) as full:
                while True:
                    fh.write(b"\0" * size)
            assert full.value.errno == errno.ENOSPC
    return filler


@dataclass
class Live:
    base: str
    settings: Settings
    app: FastAPI

    @property
    def store(self) -> JobStore:
        store: JobStore = self.app.state.store
        return store

    def temp_files(self) -> list[str]:
        return sorted(p.name for p in (self.settings.videos_dir / ".tmp").iterdir())

    def videos(self) -> list[str]:
        return sorted(p.name for p in self.settings.videos_dir.iterdir() if p.is_file())


@pytest.fixture
def live(small_disk: Path, tmp_path: Path, zoo_models_dir: Path) -> Iterator[Live]:
    """The API over real HTTP, its data dir on the small disk."""
    settings = make_settings(tmp_path, zoo_models_dir)
    assert settings.data_dir == small_disk
    app = create_app(settings, embedded_worker=False)
    with serving(app) as base:
        # A running service has the database open; a cold one on a full disk cannot even read
        # (SQLite must size its shared-memory file): see the store test below.
        assert httpx.get(f"{base}/readyz").status_code == 200
        yield Live(base, settings, app)


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    """A video of about 1 MB: what it frees when deleted is room for the database's writes."""
    return write_video(tmp_path / "clip.mp4", seconds=8.0, fps=30, width=320, height=240)


def upload(live: Live, data: bytes | Path) -> httpx.Response:
    content = data.read_bytes() if isinstance(data, Path) else data
    return httpx.post(f"{live.base}/v1/jobs", files={"file": ("clip.mp4", content)}, timeout=60)


def assert_insufficient_storage(response: httpx.Response) -> None:
    assert response.status_code == 507, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "insufficient_storage"
    assert int(response.headers["retry-after"]) > 0


def test_an_upload_to_a_full_disk_is_507_and_keeps_nothing(live: Live, small_disk: Path) -> None:
    fill(small_disk)
    for size in (1000, 8 << 20):  # within one read, and far past the socket buffers
        assert_insufficient_storage(upload(live, os.urandom(size)))
    assert live.temp_files() == [] and live.videos() == []
    assert live.store.list_jobs().items == []


def test_an_upload_that_fills_the_disk_half_way_keeps_nothing(live: Live, small_disk: Path) -> None:
    filler = fill(small_disk)
    with filler.open("r+b") as fh:
        fh.truncate(filler.stat().st_size - (1 << 20))  # 1 MB left
    free_before = shutil.disk_usage(small_disk).free
    assert_insufficient_storage(upload(live, os.urandom(3 << 20)))
    assert live.temp_files() == [] and live.videos() == []
    assert shutil.disk_usage(small_disk).free == free_before, "the partial file's space is back"


@pytest.mark.parametrize("finished", [False, True], ids=["queued", "finished"])
def test_delete_works_while_the_disk_is_full(
    live: Live, small_disk: Path, clip: Path, finished: bool
) -> None:
    """SQLite needs room even to delete (WAL frames), and the worker's maintenance truncates the
    WAL: on a full disk the rows cannot go until the video's space is freed first."""
    response = upload(live, clip)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    if finished:
        lease = live.store.claim("w", 30)
        assert lease is not None
        live.store.complete(lease, {"segments": []})
    live.store.maintenance()  # as a worker does every few minutes: the WAL is truncated
    fill(small_disk)

    deleted = httpx.delete(f"{live.base}/v1/jobs/{job_id}")
    assert deleted.status_code == 204, deleted.text
    after = httpx.get(f"{live.base}/v1/jobs/{job_id}")
    if finished:
        assert after.status_code == 404
    else:
        assert after.json()["status"] == JobStatus.CANCELED.value
    assert live.videos() == []


def test_delete_works_on_a_full_disk_with_request_rate_limits_on(
    small_disk: Path, tmp_path: Path, zoo_models_dir: Path, clip: Path
) -> None:
    """Counting a request writes a row: on a full disk the count is skipped, not the request."""
    settings = make_settings(tmp_path, zoo_models_dir).model_copy(update={"tenant_requests_per_second": 50})
    app = create_app(settings, embedded_worker=False)
    with serving(app) as base:
        live = Live(base, settings, app)
        response = upload(live, clip)
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        live.store.maintenance()
        fill(small_disk)
        deleted = httpx.delete(f"{base}/v1/jobs/{job_id}")
        assert deleted.status_code == 204, deleted.text
        assert httpx.get(f"{base}/v1/jobs/{job_id}").json()["status"] == JobStatus.CANCELED.value
        assert live.videos() == []


def test_readyz_on_a_full_disk_names_storage_and_leaves_no_probe_file(live: Live, small_disk: Path) -> None:
    assert httpx.get(f"{live.base}/readyz").status_code == 200
    fill(small_disk)
    response = httpx.get(f"{live.base}/readyz")
    assert live.temp_files() == [], "the probe file whose write failed"
    assert response.status_code == 503 and response.json()["code"] == "not_ready"
    assert response.json()["detail"].startswith("storage:")
    assert "disk is full" in response.json()["checks"]["storage"]


def test_the_database_on_a_full_disk_is_insufficient_storage_not_unavailable(
    small_disk: Path, tmp_path: Path, zoo_models_dir: Path
) -> None:
    url = make_settings(tmp_path, zoo_models_dir).resolved_database_url
    store, cold = SqlJobStore(url), SqlJobStore(url)
    try:
        store.maintenance()
        fill(small_disk)
        with pytest.raises(InsufficientStorage, match="database's disk is full"):
            store.create_job(new_job())
        store.close()  # the last connection: SQLite removes its WAL and shared-memory files,
        fill(small_disk)  # whose space is taken too
        with pytest.raises(InsufficientStorage, match="database's disk is full"):
            cold.ping()
    finally:
        store.close()
        cold.close()


def test_the_worker_pauses_once_with_what_to_do_and_resumes(
    live: Live, small_disk: Path, clip: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Claiming writes the job row; on a full disk that fails on every try. The worker says so
    once (naming the disk, not "database unavailable"), waits, and picks the job up later."""
    job_id = upload(live, clip).json()["id"]
    live.store.maintenance()
    filler = fill(small_disk)
    worker = Worker(
        store=live.store,
        blobs=live.app.state.blobs,
        settings=live.settings,
        analyzer_factory=lambda: shared_analyzer(live.settings),
    )
    caplog.set_level(logging.INFO, logger="app.worker")
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        for _ in range(5):  # each wake is another try
            time.sleep(0.3)
            worker.wake.set()
        time.sleep(0.3)
        job = live.store.get_job(job_id)
        assert job is not None and job.status is JobStatus.QUEUED
        paused = [r for r in caplog.records if "worker paused" in r.getMessage()]
        assert len(paused) == 1 and paused[0].levelno == logging.ERROR
        assert "disk is full" in paused[0].getMessage()
        assert str(live.settings.data_dir) in paused[0].getMessage()
        assert not [r for r in caplog.records if "database unavailable" in r.getMessage()]

        filler.unlink()
        worker.wake.set()
        deadline = time.monotonic() + 120
        while (job := live.store.get_job(job_id)) is not None and not job.status.is_final:
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
        assert job is not None and job.status is JobStatus.SUCCEEDED, job
        assert any("worker resumed" in r.getMessage() for r in caplog.records)
    finally:
        worker.stop()
        thread.join(timeout=60)
