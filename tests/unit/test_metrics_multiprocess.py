"""PROMETHEUS_MULTIPROC_DIR: values of several processes add up in one scrape, and a
store that is away turns into ``vas_store_up 0`` rather than a failed scrape."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app.metrics import Metrics
from app.store.sql import SqlJobStore
from tests.conftest import REPO

WRITE = "from app.metrics import Metrics; m = Metrics(); m.upload_bytes.inc({n}); m.record_job('x3d_xs', 'succeeded', 1.5)"
READ = "import sys; from app.metrics import Metrics; sys.stdout.write(Metrics().render().decode())"


def test_processes_sharing_a_multiproc_dir_are_summed(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for n in (100, 23):
        subprocess.run([sys.executable, "-c", WRITE.format(n=n)], cwd=REPO, env=env, check=True)
    out = subprocess.run(
        [sys.executable, "-c", READ], cwd=REPO, env=env, check=True, capture_output=True, text=True
    ).stdout
    assert "vas_upload_bytes_total 123.0" in out, out
    assert 'vas_job_outcomes_total{outcome="succeeded"} 2.0' in out, out
    assert 'vas_job_duration_seconds_count{model="x3d_xs",outcome="succeeded"} 2.0' in out, out


def test_single_process_and_unavailable_store() -> None:
    store = SqlJobStore("postgresql+psycopg://postgres@127.0.0.1:1/none", pool_size=1)
    try:
        metrics = Metrics()
        metrics.upload_bytes.inc(7)
        text = metrics.render(store).decode()
    finally:
        store.close()
    assert "vas_upload_bytes_total 7.0" in text
    assert "vas_store_up 0.0" in text and "vas_queue_depth" not in text
    assert "vas_upload_bytes_total 0.0" in Metrics().render().decode(), "each Metrics has its own registry"
