"""`python -m app worker` as a real process: SIGTERM releases the job without spending an attempt."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from app.domain import JobStatus, NewJob
from app.settings import Settings
from app.store.factory import open_store
from app.store.migrate import upgrade
from tests.conftest import REPO
from tests.media import write_video


def test_sigterm_releases_the_running_job_and_exits(tmp_path: Path, zoo_models_dir: Path) -> None:
    from app.analysis.probe import probe_video
    from app.blobs import LocalBlobStore

    settings = Settings(data_dir=tmp_path, models_dir=zoo_models_dir, batch_size=1, poll_interval=0.1)
    upgrade(settings.resolved_database_url)
    blobs = LocalBlobStore(settings.videos_dir)
    source = write_video(tmp_path / "long.mp4", seconds=30.0, width=96, height=72)
    writer = blobs.writer("job-1")
    writer.write(source.read_bytes())
    writer.commit()
    info = probe_video(blobs.path("job-1"), filename="long.mp4", allowed_formats=settings.allowed_format_list)
    store = open_store(settings)
    store.create_job(
        NewJob(
            id="job-1",
            model="x3d_xs",
            options={"segment_seconds": 0.5},
            video=info,
            blob_key="job-1",
            max_attempts=3,
        )
    )
    env = {
        **os.environ,
        "VAS_DATA_DIR": str(tmp_path),
        "VAS_MODELS_DIR": str(zoo_models_dir),
        "VAS_BATCH_SIZE": "1",
        "VAS_POLL_INTERVAL": "0.1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "worker"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            job = store.get_job("job-1")
            assert job is not None
            if job.status is JobStatus.RUNNING and job.progress > 0:
                break
            assert proc.poll() is None and time.monotonic() < deadline, "worker never started the job"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0].decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    job = store.get_job("job-1")
    assert job is not None and job.status is JobStatus.QUEUED, job
    assert job.attempts == 0, "a graceful release does not spend an attempt"
    assert job.worker_id is None and store.get_results("job-1") is None
    store.close()
