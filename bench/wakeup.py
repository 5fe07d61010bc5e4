"""Wake-up latency and idle database load of idle workers: LISTEN/NOTIFY vs polling.

    .venv/bin/python bench/wakeup.py [--jobs 40] [--idle-seconds 10]

Against the local PostgreSQL (VAS_TEST_PG_DSN, default 127.0.0.1:5432, user postgres), in a
throw-away database: two real ``Worker`` loops (analysis stubbed out, so only the queue is
measured) wait for jobs that arrive one at a time at random gaps. Latency is ``started_at -
created_at`` of each job (claim time minus insert time, one clock). Idle load is the statements
and commits per second the workers send while nothing is queued.
Prints a Markdown table (the one in docs/DEPLOY.md).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import event

from app.analysis import results
from app.blobs import LocalBlobStore
from app.domain import NewJob, VideoInfo
from app.settings import Settings
from app.store import migrate
from app.store.sql import SqlJobStore
from app.worker import runner

DSN = os.environ.get("VAS_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
VIDEO = VideoInfo(
    filename="v.mp4", size_bytes=1, duration=1.0, width=2, height=2, fps=1.0, codec="h264", rotation=0
)


_NO_SEGMENTS = results.AnalysisResult(
    model="stub",
    labelset="stub",
    options={},
    video=results.VideoInfo(
        duration=1.0,
        width=2,
        height=2,
        fps=1.0,
        codec="h264",
        pix_fmt=None,
        frames=0,
        rotation=0,
        decoded_frames=0,
        substituted_frames=0,
        decode_errors=0,
    ),
    segments=(),
    summary=(),
    runs=(),
    provenance=results.Provenance(
        model="stub",
        weights_file="",
        weights_sha256="",
        preprocessing_hash="",
        versions={},
        backend="stub",
        backend_reason="analysis stubbed out",
        timings=results.Timings(decode_seconds=0.0, inference_seconds=0.0),
    ),
)


class _InstantAnalyzer:
    def analyze(
        self, video_path: Path, model_name: str, options: Any, *args: Any, **kwargs: Any
    ) -> results.AnalysisResult:
        return _NO_SEGMENTS


class _AlwaysThere(LocalBlobStore):
    def path(self, key: str) -> Path:
        return Path(__file__)  # any existing file: the stub never reads it


def _url(dbname: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(DSN)
    return f"postgresql+psycopg://{info.get('user', 'postgres')}@{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/{dbname}"


class _Counter:
    """Statements and commits this process sends (the listener's LISTEN is one statement
    per connect; while it waits it sends nothing)."""

    def __init__(self, store: SqlJobStore) -> None:
        self.statements = self.commits = 0
        event.listen(store.engine, "before_cursor_execute", self._statement)
        event.listen(store.engine, "commit", self._commit)

    def _statement(self, *args: Any) -> None:
        self.statements += 1

    def _commit(self, *args: Any) -> None:
        self.commits += 1


def measure(mode: str, settings: Settings, url: str, jobs: int, idle_seconds: float) -> dict[str, float]:
    listen = mode == "notify"
    original: Callable[..., Any] = runner.start_listener
    if not listen:
        runner.start_listener = lambda url, wake: None  # type: ignore[assignment]
    store = SqlJobStore(url, pool_size=4)
    counter = _Counter(store)
    tmp = Path(f"/tmp/vas-wakeup-{uuid.uuid4().hex[:8]}")
    workers = [
        runner.Worker(
            store=store,
            blobs=_AlwaysThere(tmp),
            settings=settings,
            analyzer_factory=_InstantAnalyzer,
        )
        for _ in range(2)
    ]
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    try:
        for t in threads:
            t.start()
        time.sleep(2.0)  # listeners connected, first polls done
        before, started = (counter.statements, counter.commits), time.monotonic()
        time.sleep(idle_seconds)
        spent = time.monotonic() - started
        idle_sps = (counter.statements - before[0]) / spent
        idle_tps = (counter.commits - before[1]) / spent
        ids = []
        rng = random.Random(7)
        for _ in range(jobs):
            job_id = str(uuid.uuid4())
            store.create_job(
                NewJob(id=job_id, model="m", options={}, video=VIDEO, blob_key=job_id, max_attempts=3)
            )
            ids.append(job_id)
            time.sleep(rng.uniform(0.05, 0.3))
        deadline = time.monotonic() + 30
        latencies: list[float] = []
        for job_id in ids:
            while (job := store.get_job(job_id)) is None or job.started_at is None:
                assert time.monotonic() < deadline, "jobs not claimed"
                time.sleep(0.05)
            latencies.append(job.started_at - job.created_at)
    finally:
        for w in workers:
            w.stop()
        for t in threads:
            t.join(10)
        runner.start_listener = original  # type: ignore[assignment]
        store.close()
    latencies.sort()
    return {
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
        "max_ms": 1000 * latencies[-1],
        "idle_tps": idle_tps,
        "idle_sps": idle_sps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args()
    dbname = f"vas_wakeup_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{dbname}"')
    url = _url(dbname)
    migrate.upgrade(url)
    modes = [
        ("notify", Settings(database_url=url, poll_interval=0.5, listen_poll_interval=5.0)),
        ("poll 0.5 s", Settings(database_url=url, poll_interval=0.5)),
        ("poll 0.1 s", Settings(database_url=url, poll_interval=0.1)),
    ]
    print("| mode (2 idle workers) | wake-up p50 | p95 | max | idle DB load (statements/s, commits/s) |")
    print("|---|---|---|---|---|")
    try:
        for name, settings in modes:
            r = measure(name.split()[0], settings, url, args.jobs, args.idle_seconds)
            label = "LISTEN/NOTIFY + 5 s safety poll" if name == "notify" else f"{name} poll only"
            print(
                f"| {label} | {r['p50_ms']:.0f} ms | {r['p95_ms']:.0f} ms | {r['max_ms']:.0f} ms "
                f"| {r['idle_sps']:.1f}, {r['idle_tps']:.1f} |",
                flush=True,
            )
    finally:
        with psycopg.connect(DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


if __name__ == "__main__":
    main()
