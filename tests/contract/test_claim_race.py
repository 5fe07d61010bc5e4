"""Concurrent claimers never take the same job twice and never error.

SQLite: two SqlJobStore instances on one file stand in for two worker processes
(separate pools, so BEGIN IMMEDIATE and busy_timeout do the serialising).
PostgreSQL: FOR UPDATE SKIP LOCKED.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter

from app.domain import NewJob, VideoInfo
from app.store.sql import SqlJobStore
from tests.contract.conftest import FakeClock

JOBS = 60
THREADS = 6
VIDEO = VideoInfo(
    filename="v.mp4", size_bytes=1, duration=1.0, width=2, height=2, fps=1.0, codec="h264", rotation=0
)


def test_every_job_is_claimed_exactly_once(store: SqlJobStore, db_url: str, clock: FakeClock) -> None:
    ids = set()
    for i in range(JOBS):
        job_id = str(uuid.uuid4())
        store.create_job(
            NewJob(id=job_id, model="m", options={"i": i}, video=VIDEO, blob_key=job_id, max_attempts=3)
        )
        clock.advance(0.001)
        ids.add(job_id)

    second = SqlJobStore(db_url, pool_size=THREADS, clock=clock)  # "another process"
    stores = [store, second]
    start = threading.Barrier(THREADS)
    claimed: list[tuple[str, str]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        worker = f"worker-{n}"
        target = stores[n % 2]
        try:
            start.wait()
            while (lease := target.claim(worker, 60.0)) is not None:
                assert lease.job.attempts == 1
                with lock:
                    claimed.append((lease.job.id, worker))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        second.close()

    assert errors == []
    counts = Counter(job_id for job_id, _ in claimed)
    assert set(counts) == ids
    assert max(counts.values()) == 1
    for job_id, worker in claimed:
        job = store.get_job(job_id)
        assert job is not None and job.worker_id == worker and job.attempts == 1
