"""The JobStore contract, run unchanged against SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

from app.domain import Job, JobError, JobStatus, Lease, NewJob, VideoInfo
from app.errors import LeaseLost, Unavailable
from app.store.sql import SqlJobStore
from tests.contract.conftest import FakeClock

LEASE = 30.0
VIDEO = VideoInfo(
    filename="clip.mp4",
    size_bytes=1234,
    duration=2.5,
    width=320,
    height=240,
    fps=25.0,
    codec="h264",
    rotation=0,
)


def new_job(
    *, tenant: str = "default", key: str | None = None, max_attempts: int = 3, model: str = "x3d_s"
) -> NewJob:
    job_id = str(uuid.uuid4())
    return NewJob(
        id=job_id,
        model=model,
        options={"top_k": 5, "crops": 1},
        video=VIDEO,
        blob_key=f"videos/{job_id}.mp4",
        max_attempts=max_attempts,
        tenant=tenant,
        idempotency_key=key,
    )


def submit(store: SqlJobStore, clock: FakeClock, **kw: Any) -> Job:
    """Create a job, then move the clock so creation times are distinct."""
    job, created = store.create_job(new_job(**kw))
    assert created
    clock.advance(1)
    return job


def claim(store: SqlJobStore, worker: str = "w1") -> Lease:
    lease = store.claim(worker, LEASE)
    assert lease is not None
    return lease


# ---------------------------------------------------------------- create / get / idempotency


def test_create_and_get(store: SqlJobStore, clock: FakeClock) -> None:
    new = new_job(tenant="acme")
    job, created = store.create_job(new)
    assert created
    assert job.id == new.id
    assert job.status is JobStatus.QUEUED
    assert (job.attempts, job.progress, job.max_attempts) == (0, 0.0, 3)
    assert job.created_at == clock.now
    assert job.started_at is None and job.finished_at is None and job.error is None
    assert job.options == {"top_k": 5, "crops": 1}
    assert job.video == VIDEO
    assert job.blob_key == new.blob_key
    assert job.tenant == "acme"
    assert store.get_job(new.id) == job
    assert store.get_job(new.id, "acme") == job
    assert store.get_job(new.id, "other") is None
    assert store.get_job("no-such-job") is None


def test_same_idempotency_key_returns_existing_job(store: SqlJobStore) -> None:
    first, created = store.create_job(new_job(key="k1"))
    assert created
    again, created_again = store.create_job(new_job(key="k1"))
    assert not created_again
    assert again == first
    assert store.get_job_by_idempotency_key("default", "k1") == first
    assert len(store.list_jobs().items) == 1


def test_idempotency_key_is_per_tenant(store: SqlJobStore) -> None:
    a, _ = store.create_job(new_job(key="k1", tenant="a"))
    b, created = store.create_job(new_job(key="k1", tenant="b"))
    assert created
    assert a.id != b.id
    assert store.get_job_by_idempotency_key("b", "k1") == b
    assert store.get_job_by_idempotency_key("c", "k1") is None


def test_concurrent_submissions_with_one_key_create_one_job(store: SqlJobStore) -> None:
    start = threading.Barrier(6)
    outcomes: list[tuple[Job, bool]] = []
    errors: list[BaseException] = []

    def submit_once() -> None:
        try:
            start.wait()
            outcomes.append(store.create_job(new_job(key="race")))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=submit_once) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(created for _, created in outcomes) == 1
    assert len({job.id for job, _ in outcomes}) == 1


# ---------------------------------------------------------------- listing


def test_list_newest_first_with_cursor_pages(store: SqlJobStore, clock: FakeClock) -> None:
    ids = [submit(store, clock).id for _ in range(5)]
    # Three jobs with the SAME created_at: the cursor must break ties by id.
    tied = [store.create_job(new_job())[0].id for _ in range(3)]
    expected = sorted(tied, reverse=True) + ids[::-1]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = store.list_jobs(limit=3, cursor=cursor)
        pages += 1
        seen += [j.id for j in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == expected
    assert pages == 3


def test_list_exact_multiple_has_no_empty_last_page(store: SqlJobStore, clock: FakeClock) -> None:
    for _ in range(4):
        submit(store, clock)
    first = store.list_jobs(limit=2)
    assert first.next_cursor is not None
    second = store.list_jobs(limit=2, cursor=first.next_cursor)
    assert len(second.items) == 2
    assert second.next_cursor is None


def test_list_filters_by_status_and_tenant(store: SqlJobStore, clock: FakeClock) -> None:
    a1 = submit(store, clock, tenant="a")
    a2 = submit(store, clock, tenant="a")
    b1 = submit(store, clock, tenant="b")
    lease = claim(store)
    assert lease.job.id == a1.id

    running = store.list_jobs(status=JobStatus.RUNNING)
    assert [j.id for j in running.items] == [a1.id]
    queued = store.list_jobs(status=JobStatus.QUEUED)
    assert [j.id for j in queued.items] == [b1.id, a2.id]
    assert [j.id for j in store.list_jobs(tenant="a").items] == [a2.id, a1.id]
    assert [j.id for j in store.list_jobs(tenant="b", status=JobStatus.RUNNING).items] == []
    assert store.list_jobs(tenant="nobody").items == []


def test_list_status_filter_paginates(store: SqlJobStore, clock: FakeClock) -> None:
    queued = [submit(store, clock).id for _ in range(5)]
    store.cancel(queued[2])
    remaining = [i for i in queued if i != queued[2]][::-1]
    page1 = store.list_jobs(status=JobStatus.QUEUED, limit=3)
    page2 = store.list_jobs(status=JobStatus.QUEUED, limit=3, cursor=page1.next_cursor)
    assert [j.id for j in page1.items + page2.items] == remaining
    assert page2.next_cursor is None


@pytest.mark.parametrize("cursor", ["not base64 ???", "bm90IGpzb24", "WzEsMiwzXQ", "WyJ4IiwieSJd"])
def test_list_rejects_malformed_cursor(store: SqlJobStore, cursor: str) -> None:
    with pytest.raises(ValueError):
        store.list_jobs(cursor=cursor)


# ---------------------------------------------------------------- claim


def test_claim_sets_running_attempts_and_lease(store: SqlJobStore, clock: FakeClock) -> None:
    job = submit(store, clock)
    lease = claim(store, "worker-a")
    assert lease.worker_id == "worker-a"
    assert lease.token
    assert lease.expires_at == clock.now + LEASE
    got = lease.job
    assert got.id == job.id
    assert got.status is JobStatus.RUNNING
    assert got.attempts == 1
    assert got.started_at == clock.now
    assert got.worker_id == "worker-a"
    assert got.lease_expires_at == lease.expires_at
    assert store.get_job(job.id) == got


def test_claim_takes_oldest_first(store: SqlJobStore, clock: FakeClock) -> None:
    jobs = [submit(store, clock) for _ in range(3)]
    claimed = [claim(store).job.id for _ in range(3)]
    assert claimed == [j.id for j in jobs]


def test_nothing_claimable_returns_none(store: SqlJobStore, clock: FakeClock) -> None:
    assert store.claim("w1", LEASE) is None
    submit(store, clock)
    claim(store)
    clock.advance(LEASE - 1)
    assert store.claim("w2", LEASE) is None


def test_renew_extends_the_lease(store: SqlJobStore, clock: FakeClock) -> None:
    submit(store, clock)
    lease = claim(store)
    clock.advance(LEASE - 1)
    renewed = store.renew(lease, LEASE)
    assert renewed.token == lease.token
    assert renewed.expires_at == clock.now + LEASE
    assert renewed.job.lease_expires_at == renewed.expires_at
    clock.advance(LEASE - 1)  # past the original expiry, within the renewed one
    assert store.claim("w2", LEASE) is None
    store.report_progress(renewed, 0.5)


def test_report_progress(store: SqlJobStore, clock: FakeClock) -> None:
    job = submit(store, clock)
    lease = claim(store)
    store.report_progress(lease, 0.25)
    assert store.get_job(job.id).progress == 0.25  # type: ignore[union-attr]
    store.report_progress(lease, 7.0)
    assert store.get_job(job.id).progress == 1.0  # type: ignore[union-attr]


# ---------------------------------------------------------------- complete / results


def test_complete_writes_results_and_marks_succeeded(store: SqlJobStore, clock: FakeClock) -> None:
    job = submit(store, clock)
    lease = claim(store)
    assert store.get_results(job.id) is None
    payload = {"segments": [{"start": 0.0, "end": 2.0, "labels": [["run", 0.9]]}], "model": "x3d_s"}
    done = store.complete(lease, payload)
    assert done.status is JobStatus.SUCCEEDED
    assert done.progress == 1.0
    assert done.finished_at == clock.now
    assert done.lease_expires_at is None
    assert store.get_results(job.id) == payload
    assert store.get_job(job.id) == done
    # A succeeded job is never claimed again.
    clock.advance(LEASE * 10)
    assert store.claim("w2", LEASE) is None


def test_complete_with_unserialisable_results_writes_nothing(store: SqlJobStore, clock: FakeClock) -> None:
    job = submit(store, clock)
    lease = claim(store)
    with pytest.raises(TypeError):
        store.complete(lease, {"bad": object()})
    assert store.get_results(job.id) is None
    assert store.get_job(job.id).status is JobStatus.RUNNING  # type: ignore[union-attr]
    store.complete(lease, {"ok": True})


def test_stale_lease_cannot_write_after_another_worker_reclaims(store: SqlJobStore, clock: FakeClock) -> None:
    job = submit(store, clock)
    stale = claim(store, "slow")
    clock.advance(LEASE + 1)
    fresh = claim(store, "fast")
    assert fresh.job.id == job.id
    assert fresh.token != stale.token
    assert fresh.job.attempts == 2

    with pytest.raises(LeaseLost):
        store.report_progress(stale, 0.9)
    with pytest.raises(LeaseLost):
        store.complete(stale, {"from": "stale"})
    with pytest.raises(LeaseLost):
        store.fail(stale, JobError("boom", "stale"), retryable=False)
    with pytest.raises(LeaseLost):
        store.renew(stale, LEASE)
    with pytest.raises(LeaseLost):
        store.release(stale)

    assert store.get_results(job.id) is None
    current = store.get_job(job.id)
    assert current == fresh.job
    store.complete(fresh, {"from": "fresh"})
    assert store.get_results(job.id) == {"from": "fresh"}


def test_expired_lease_is_reclaimed_with_one_more_attempt(store: SqlJobStore, clock: FakeClock) -> None:
    job = submit(store, clock)
    first = claim(store, "w1")
    store.report_progress(first, 0.5)
    clock.advance(LEASE + 0.001)
    second = claim(store, "w2")
    assert second.job.id == job.id
    assert second.job.attempts == 2
    assert second.job.worker_id == "w2"
    assert second.job.progress == 0.0
    assert second.job.started_at == first.job.started_at


# ---------------------------------------------------------------- failures and retries


def test_attempts_exhausted_by_expired_leases(store: SqlJobStore, clock: FakeClock) -> None:
    job = submit(store, clock, max_attempts=2)
    other = submit(store, clock)
    claim(store)  # job, attempt 1
    clock.advance(LEASE + 1)
    assert claim(store).job.id == job.id  # attempt 2
    live = claim(store)  # `other`, lease still valid later on
    assert live.job.id == other.id
    clock.advance(LEASE - 1)
    store.renew(live, LEASE)
    clock.advance(2)  # job's lease has expired, other's is live

    assert store.claim("w3", LEASE) is None  # no attempts left: not claimable
    assert store.fail_exhausted() == [job.id]
    failed = store.get_job(job.id)
    assert failed is not None
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error.code == "attempts_exhausted"
    assert failed.finished_at == clock.now
    assert failed.lease_expires_at is None
    assert store.fail_exhausted() == []
    assert store.get_job(other.id).status is JobStatus.RUNNING  # type: ignore[union-attr]


def test_exhausted_by_expiry_mentions_the_last_error(store: SqlJobStore, clock: FakeClock) -> None:
    job = submit(store, clock, max_attempts=2)
    store.fail(claim(store), JobError("decode_glitch", "bad packet at 3.2s"), retryable=True)
    claim(store)
    clock.advance(LEASE + 1)
    assert store.fail_exhausted() == [job.id]
    failed = store.get_job(job.id)
    assert failed is not None and failed.error is not None
    assert failed.error.code == "attempts_exhausted"
    assert "decode_glitch: bad packet at 3.2s" in failed.error.message


def test_retryable_failure_requeues_and_keeps_last_error(store: SqlJobStore, clock: FakeClock) -> None:
    job = submit(store, clock)
    lease = claim(store)
    after = store.fail(lease, JobError("decode_glitch", "temporary"), retryable=True)
    assert after.status is JobStatus.QUEUED
    assert after.error == JobError("decode_glitch", "temporary")
    assert after.lease_expires_at is None
    assert after.finished_at is None
    assert store.get_job(job.id) == after
    again = claim(store)
    assert again.job.id == job.id
    assert again.job.attempts == 2


def test_retryable_failure_on_last_attempt_exhausts(store: SqlJobStore, clock: FakeClock) -> None:
    job = submit(store, clock, max_attempts=2)
    store.fail(claim(store), JobError("flaky", "first"), retryable=True)
    final = store.fail(claim(store), JobError("flaky", "second try broke"), retryable=True)
    assert final.status is JobStatus.FAILED
    assert final.attempts == 2
    assert final.error is not None
    assert final.error.code == "attempts_exhausted"
    assert "flaky" in final.error.message and "second try broke" in final.error.message
    assert final.finished_at == clock.now
    assert store.get_job(job.id) == final
    assert store.claim("w", LEASE) is None


def test_non_retryable_failure_is_final_at_once(store: SqlJobStore, clock: FakeClock) -> None:
    job = submit(store, clock, max_attempts=5)
    final = store.fail(claim(store), JobError("video_unreadable", "no decoder"), retryable=False)
    assert final.status is JobStatus.FAILED
    assert final.error == JobError("video_unreadable", "no decoder")
    assert final.attempts == 1
    assert final.finished_at == clock.now
    assert final.lease_expires_at is None
    assert store.get_job(job.id) == final
    assert store.claim("w", LEASE) is None


def test_release_does_not_burn_an_attempt(store: SqlJobStore, clock: FakeClock) -> None:
    job = submit(store, clock, max_attempts=1)
    lease = claim(store)
    store.report_progress(lease, 0.4)
    released = store.release(lease)
    assert released.status is JobStatus.QUEUED
    assert released.attempts == 0
    assert released.lease_expires_at is None
    assert released.progress == 0.0
    with pytest.raises(LeaseLost):
        store.report_progress(lease, 0.5)
    again = claim(store)  # max_attempts=1 and still claimable
    assert again.job.id == job.id
    assert again.job.attempts == 1


# ---------------------------------------------------------------- cancel / delete


def test_cancel_queued_job(store: SqlJobStore, clock: FakeClock) -> None:
    job = submit(store, clock)
    canceled = store.cancel(job.id)
    assert canceled is not None
    assert canceled.status is JobStatus.CANCELED
    assert canceled.finished_at == clock.now
    assert store.claim("w", LEASE) is None


def test_cancel_running_job_fences_the_worker(store: SqlJobStore, clock: FakeClock) -> None:
    job = submit(store, clock)
    lease = claim(store)
    canceled = store.cancel(job.id)
    assert canceled is not None
    assert canceled.status is JobStatus.CANCELED
    assert canceled.lease_expires_at is None
    with pytest.raises(LeaseLost):
        store.report_progress(lease, 0.5)
    with pytest.raises(LeaseLost):
        store.complete(lease, {"late": True})
    assert store.get_results(job.id) is None
    clock.advance(LEASE * 2)
    assert store.claim("w2", LEASE) is None
    assert store.get_job(job.id) == canceled


def test_cancel_final_job_returns_it_unchanged(store: SqlJobStore, clock: FakeClock) -> None:
    job = submit(store, clock)
    done = store.complete(claim(store), {"x": 1})
    clock.advance(5)
    assert store.cancel(job.id) == done
    assert store.get_job(job.id) == done
    assert store.get_results(job.id) == {"x": 1}


def test_cancel_unknown_or_foreign_job_is_none(store: SqlJobStore, clock: FakeClock) -> None:
    job = submit(store, clock, tenant="a")
    assert store.cancel("missing") is None
    assert store.cancel(job.id, tenant="b") is None
    assert store.get_job(job.id).status is JobStatus.QUEUED  # type: ignore[union-attr]
    assert store.cancel(job.id, tenant="a").status is JobStatus.CANCELED  # type: ignore[union-attr]


def test_delete_job_removes_row_and_results(store: SqlJobStore, clock: FakeClock) -> None:
    job = submit(store, clock, tenant="a")
    store.complete(claim(store), {"x": 1})
    assert store.delete_job(job.id, tenant="b") is False
    assert store.delete_job(job.id, tenant="a") is True
    assert store.get_job(job.id) is None
    assert store.get_results(job.id) is None
    assert store.delete_job(job.id) is False


def test_delete_running_job_fences_the_worker(store: SqlJobStore, clock: FakeClock) -> None:
    job = submit(store, clock)
    lease = claim(store)
    assert store.delete_job(job.id)
    with pytest.raises(LeaseLost):
        store.complete(lease, {"late": True})
    assert store.get_results(job.id) is None


def test_delete_results_and_blob_keys(store: SqlJobStore, clock: FakeClock) -> None:
    a = submit(store, clock)
    b = submit(store, clock)
    assert store.blob_keys() == {a.blob_key, b.blob_key}
    store.complete(claim(store), {"x": 1})
    store.delete_results(a.id)
    assert store.get_results(a.id) is None
    store.delete_results(a.id)  # idempotent
    assert store.get_job(a.id).status is JobStatus.SUCCEEDED  # type: ignore[union-attr]
    store.delete_job(a.id)
    assert store.blob_keys() == {b.blob_key}


# ---------------------------------------------------------------- operations


def test_migrations_current_and_ping(store: SqlJobStore) -> None:
    assert store.migrations_current() is True
    store.ping()
    store.maintenance()


def test_unreachable_database_raises_unavailable() -> None:
    # Port 1 on loopback: connection refused at once, no server needed.
    store = SqlJobStore("postgresql+psycopg://postgres@127.0.0.1:1/none", pool_size=1)
    try:
        with pytest.raises(Unavailable):
            store.ping()
        with pytest.raises(Unavailable):
            store.get_job("x")
        with pytest.raises(Unavailable):
            store.claim("w", LEASE)
    finally:
        store.close()
