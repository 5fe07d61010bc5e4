"""Store contract for metrics and retention (count_by_status, expire_videos, purge_finished),
run against SQLite and PostgreSQL; plus LISTEN/NOTIFY wake-ups on PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest

from app.domain import JobError, JobStatus
from app.store.notify import JobListener, libpq_conninfo, start_listener
from app.store.sql import SqlJobStore
from tests.contract.conftest import FakeClock
from tests.contract.test_job_store import claim, submit

DAY = 86_400.0


def test_count_by_status_lists_every_status(store: SqlJobStore, clock: FakeClock) -> None:
    assert store.count_by_status() == dict.fromkeys(JobStatus, 0)
    done, failed, running, canceled, _queued = (submit(store, clock) for _ in range(5))
    store.complete(claim(store), {"ok": True})
    store.fail(claim(store), JobError("video_unreadable", "bad"), retryable=False)
    claim(store)
    store.cancel(canceled.id)
    counts = store.count_by_status()
    assert counts == {
        JobStatus.QUEUED: 1,
        JobStatus.RUNNING: 1,
        JobStatus.SUCCEEDED: 1,
        JobStatus.FAILED: 1,
        JobStatus.CANCELED: 1,
    }
    assert store.get_job(done.id).status is JobStatus.SUCCEEDED  # type: ignore[union-attr]
    assert store.get_job(failed.id).status is JobStatus.FAILED  # type: ignore[union-attr]
    assert store.get_job(running.id).status is JobStatus.RUNNING  # type: ignore[union-attr]


def test_expire_videos_releases_old_finished_jobs_only(store: SqlJobStore, clock: FakeClock) -> None:
    old = submit(store, clock)
    store.complete(claim(store), {"x": 1})
    clock.advance(10 * DAY)
    recent = submit(store, clock)
    store.complete(claim(store), {"x": 2})
    queued_long_ago = submit(store, clock)  # never finished: its video must stay
    cutoff = clock.now - DAY
    assert store.expire_videos(cutoff) == [old.blob_key]
    assert store.expire_videos(cutoff) == []  # idempotent
    old_now = store.get_job(old.id)
    assert old_now is not None and old_now.blob_key is None
    assert old_now.video == old.video and store.get_results(old.id) == {"x": 1}
    assert store.blob_keys() == {recent.blob_key, queued_long_ago.blob_key}
    assert store.expire_videos(clock.now + 10 * DAY) == [recent.blob_key]


def test_purge_finished_deletes_rows_and_results(store: SqlJobStore, clock: FakeClock) -> None:
    old = submit(store, clock)
    store.complete(claim(store), {"x": 1})
    old_failed = submit(store, clock)
    store.fail(claim(store), JobError("no_frames", "empty"), retryable=False)
    clock.advance(10 * DAY)
    recent = submit(store, clock)
    store.complete(claim(store), {"x": 2})
    running = submit(store, clock)
    claim(store)
    assert store.purge_finished(clock.now - DAY) == sorted([old.blob_key, old_failed.blob_key])
    assert store.get_job(old.id) is None and store.get_results(old.id) is None
    assert store.get_job(old_failed.id) is None
    assert store.get_job(running.id) is not None
    assert store.get_results(recent.id) == {"x": 2}
    assert store.purge_finished(clock.now - DAY) == []


# ---------------------------------------------------------------- LISTEN/NOTIFY


def test_sqlite_has_no_listener(tmp_path: pytest.TempPathFactory) -> None:
    assert libpq_conninfo(f"sqlite:///{tmp_path}/x.sqlite3") is None
    assert start_listener(f"sqlite:///{tmp_path}/x.sqlite3", threading.Event()) is None


def test_conninfo_keeps_credentials_and_query() -> None:
    info = libpq_conninfo("postgresql+psycopg://u:p%40ss@db.example:6543/vas?sslmode=require")
    assert info is not None
    for part in ("host=db.example", "port=6543", "user=u", "dbname=vas", "sslmode=require"):
        assert part in info
    assert "p@ss" in info


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_queueing_a_job_wakes_a_listener(store: SqlJobStore, db_url: str, clock: FakeClock) -> None:
    wake = threading.Event()
    conninfo = libpq_conninfo(db_url)
    assert conninfo is not None
    listener = JobListener(conninfo, wake).start()
    try:
        assert listener.connected.wait(10)
        wake.clear()
        submit(store, clock)
        assert wake.wait(5), "no notification after create_job"
        wake.clear()
        lease = claim(store)
        time.sleep(0.2)
        assert not wake.is_set(), "a claim queues nothing"
        store.release(lease)
        assert wake.wait(5), "no notification after release"
        wake.clear()
        store.fail(claim(store), JobError("internal_error", "boom"), retryable=True)
        assert wake.wait(5), "no notification after a retryable failure"
    finally:
        listener.stop()
    assert listener.notifications >= 3
