"""Partial results and the webhook outbox on SQLite and PostgreSQL: fenced writes, rows
written with the final state, claims that never hand one delivery to two senders."""

from __future__ import annotations

import dataclasses
import json
import threading

import pytest

from app.domain import DeliveryStatus, JobError
from app.errors import LeaseLost
from app.store.sql import SqlJobStore
from app.store.webhooks import WebhookStore
from tests.contract.conftest import FakeClock
from tests.contract.test_job_store import new_job


def with_callback(url: str = "https://hooks.example.com/x") -> object:
    return dataclasses.replace(new_job(), callback_url=url, callback_owner="tenant:default")


def test_partials_are_fenced_and_go_with_the_final_state(store: SqlJobStore) -> None:
    job, _ = store.create_job(new_job())
    lease = store.claim("w", 30)
    assert lease is not None
    store.append_partial(lease, [{"index": 0}], 0.5)
    store.append_partial(lease, [{"index": 1}], 1.0)
    batches = store.partial_results(job.id)
    assert [b.segments for b in batches] == [[{"index": 0}], [{"index": 1}]]
    assert store.partial_results(job.id, after=batches[0].id) == batches[1:]
    stale = dataclasses.replace(lease, token="not-the-token")
    with pytest.raises(LeaseLost):
        store.append_partial(stale, [{"index": 9}], 0.9)
    store.complete(lease, {"segments": []})
    assert store.partial_results(job.id) == []
    with pytest.raises(LeaseLost):
        store.append_partial(lease, [{"index": 2}], 1.0)


def test_final_states_queue_one_delivery_each(store: SqlJobStore, clock: FakeClock) -> None:
    hooks = WebhookStore(store.engine, clock=clock)
    for _ in range(3):
        store.create_job(with_callback())  # type: ignore[arg-type]
        clock.advance(1)
    plain, _ = store.create_job(new_job())
    done = store.claim("w", 30)
    assert done is not None
    store.complete(done, {"segments": []})
    retried = store.claim("w", 30)
    assert retried is not None
    store.fail(retried, JobError("boom", "x"), retryable=True)  # back to queued: not final, no webhook
    assert hooks.for_job(retried.job.id) == []
    again = store.claim("w", 30)
    assert again is not None and again.job.id == retried.job.id, "the oldest queued job comes back first"
    store.fail(again, JobError("boom", "x"), retryable=False)
    [delivery] = hooks.for_job(again.job.id)
    assert (
        delivery.event == "job.failed"
        and delivery.status == DeliveryStatus.PENDING
        and delivery.owner == "tenant:default"
    )
    third = store.claim("w", 30)
    assert third is not None
    store.cancel(third.job.id)
    store.cancel(third.job.id)  # already final: nothing new
    store.cancel(plain.id)
    assert [d.event for d in hooks.for_job(done.job.id)] == ["job.succeeded"]
    assert [d.event for d in hooks.for_job(third.job.id)] == ["job.canceled"]
    assert hooks.for_job(plain.id) == []


def test_claims_are_exclusive_and_recorded_with_the_lock(store: SqlJobStore, clock: FakeClock) -> None:
    hooks = WebhookStore(store.engine, clock=clock)
    for _ in range(6):
        job, _ = store.create_job(with_callback())  # type: ignore[arg-type]
        store.cancel(job.id)
    claimed: list[str] = []
    lock = threading.Lock()

    def take() -> None:
        while (d := hooks.claim_due(60)) is not None:
            with lock:
                claimed.append(d.id)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claimed) == 6 == len(set(claimed))
    assert hooks.claim_due(60) is None, "locked rows are not handed out again"
    clock.advance(61)
    again = hooks.claim_due(60)
    assert again is not None, "an expired lock is retried by someone else"
    assert hooks.record(
        again,
        started_at=clock.now,
        duration_ms=1,
        status_code=200,
        error=None,
        status=DeliveryStatus.DELIVERED,
    )
    late = dataclasses.replace(again, lock_token="old")
    assert not hooks.record(
        late, started_at=clock.now, duration_ms=1, status_code=500, error="x", status=DeliveryStatus.PENDING
    )
    [delivered] = hooks.for_job(again.job_id)
    assert delivered.status == DeliveryStatus.DELIVERED and [a.status_code for a in delivered.log] == [200]


def test_deliveries_carry_the_job_json_and_outlive_the_job(store: SqlJobStore, clock: FakeClock) -> None:
    """The body is rendered with the final state; deleting the job keeps a pending delivery
    and drops settled ones, and a pending one settling after the delete goes too."""
    hooks = WebhookStore(store.engine, clock=clock)
    ids = []
    for _ in range(3):
        job, _ = store.create_job(with_callback())  # type: ignore[arg-type]
        store.cancel(job.id)
        ids.append(job.id)
        clock.advance(1)  # claimed in this order
    [first] = hooks.for_job(ids[0])
    assert first.body is not None
    body = json.loads(first.body)
    assert body["id"] == ids[0] and body["status"] == "canceled" and body["finished_at"] is not None
    assert body["event"] == "job.canceled" and body["delivery_id"] == first.id

    settled = hooks.claim_due(60)
    assert settled is not None and settled.job_id == ids[0]
    assert hooks.record(
        settled,
        started_at=clock.now,
        duration_ms=1,
        status_code=200,
        error=None,
        status=DeliveryStatus.DELIVERED,
    )
    for job_id in ids:
        assert store.delete_job(job_id)
    assert hooks.for_job(ids[0]) == [], "a settled delivery goes with its job"
    assert [d.status for d in hooks.for_job(ids[1])] == [DeliveryStatus.PENDING], (
        "a pending one stays to be sent"
    )
    retried = hooks.claim_due(60)
    assert retried is not None and retried.job_id == ids[1]
    assert hooks.record(
        retried,
        started_at=clock.now,
        duration_ms=1,
        status_code=500,
        error="x",
        status=DeliveryStatus.PENDING,
        next_attempt_at=clock.now + 100,
    )
    assert [d.attempts for d in hooks.for_job(ids[1])] == [1]
    last = hooks.claim_due(60)
    assert last is not None and last.job_id == ids[2]
    assert hooks.record(
        last,
        started_at=clock.now,
        duration_ms=1,
        status_code=200,
        error=None,
        status=DeliveryStatus.DELIVERED,
    )
    assert hooks.for_job(ids[2]) == [], "settled after the delete: removed"
