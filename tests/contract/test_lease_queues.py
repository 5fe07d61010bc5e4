"""The one lease-queue mechanism (``app.store.lease_queue``) behind its three queues: jobs,
annotated-video renders and webhook deliveries, each on SQLite and PostgreSQL.

Every test runs once per queue through a small adapter over that queue's own store API
(``SqlJobStore``, ``RenderStore``, ``WebhookStore``), so the same claim, expiry, renewal and
fencing rules are checked for all three.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select, update

from app.domain import DeliveryStatus, Lease, RenderStatus
from app.errors import LeaseLost
from app.settings import Settings
from app.store.engine import write_options
from app.store.factory import open_render_store
from app.store.job_leases import JOB_QUEUE
from app.store.lease_queue import LeaseQueue
from app.store.renders import Render, RenderStore, render_queue
from app.store.sql import SqlJobStore
from app.store.webhooks import DELIVERY_QUEUE, Delivery, WebhookStore
from tests.contract.conftest import FakeClock
from tests.contract.test_job_store import new_job

LEASE = 10.0


class QueueUnderTest:
    """One queue seen through its store's API: add items, claim, renew, finish (fenced)."""

    queue: LeaseQueue

    def __init__(self, store: SqlJobStore, clock: FakeClock) -> None:
        self.store, self.clock = store, clock

    def add(self) -> str:
        """A new claimable item (one second after the previous one); its id."""
        raise NotImplementedError

    def claim(self) -> Any | None:
        raise NotImplementedError

    def item_id(self, held: Any) -> str:
        raise NotImplementedError

    def renew(self, held: Any) -> None:
        raise NotImplementedError

    def finish(self, held: Any) -> bool:
        """Settle the item under its lease; False when the lease was lost."""
        raise NotImplementedError

    def stale(self, held: Any) -> Any:
        """The same claim with a token that no longer holds."""
        raise NotImplementedError

    def row(self, item_id: str) -> dict[str, Any]:
        table = self.queue.table
        with self.store.engine.connect() as conn:
            found = conn.execute(select(table).where(table.c[self.queue.id_column] == item_id)).one()
        return dict(found._mapping)


class Jobs(QueueUnderTest):
    queue = JOB_QUEUE

    def add(self) -> str:
        job, _ = self.store.create_job(new_job())
        self.clock.advance(1)
        return job.id

    def claim(self) -> Lease | None:
        return self.store.claim("w", LEASE)

    def item_id(self, held: Lease) -> str:
        return held.job.id

    def renew(self, held: Lease) -> None:
        self.store.renew(held, LEASE)

    def finish(self, held: Lease) -> bool:
        try:
            self.store.complete(held, {"segments": []})
        except LeaseLost:
            return False
        return True

    def stale(self, held: Lease) -> Lease:
        return dataclasses.replace(held, token="stale")


class Renders(QueueUnderTest):
    def __init__(self, store: SqlJobStore, clock: FakeClock, *, max_attempts: int = 3) -> None:
        super().__init__(store, clock)
        self.renders = RenderStore(store.engine, max_attempts=max_attempts, clock=clock)
        self.queue = render_queue(max_attempts)

    def add(self) -> str:
        job, _ = self.store.create_job(new_job())
        self.renders.request(job.id)
        self.clock.advance(1)
        return job.id

    def claim(self) -> Render | None:
        return self.renders.claim(LEASE)

    def item_id(self, held: Render) -> str:
        return held.job_id

    def renew(self, held: Render) -> None:
        self.renders.renew(held, LEASE)

    def finish(self, held: Render) -> bool:
        return self.renders.finish(held, file_key="x.mp4")

    def stale(self, held: Render) -> Render:
        return dataclasses.replace(held, lease_token="stale")


class Deliveries(QueueUnderTest):
    queue = DELIVERY_QUEUE

    def __init__(self, store: SqlJobStore, clock: FakeClock) -> None:
        super().__init__(store, clock)
        self.hooks = WebhookStore(store.engine, clock=clock)

    def add(self) -> str:
        job, _ = self.store.create_job(
            dataclasses.replace(new_job(), callback_url="https://hooks.example.com/x", callback_owner="o")
        )
        self.store.cancel(job.id)  # queues a delivery, due now
        [delivery] = self.hooks.for_job(job.id)
        self.clock.advance(1)
        return delivery.id

    def claim(self) -> Delivery | None:
        return self.hooks.claim_due(LEASE)

    def item_id(self, held: Delivery) -> str:
        return held.id

    def finish(self, held: Delivery) -> bool:
        return self.hooks.record(
            held,
            started_at=self.clock.now,
            duration_ms=1.0,
            status_code=200,
            error=None,
            status=DeliveryStatus.DELIVERED,
        )

    def stale(self, held: Delivery) -> Delivery:
        return dataclasses.replace(held, lock_token="stale")


QUEUES = {"jobs": Jobs, "renders": Renders, "deliveries": Deliveries}


@pytest.fixture(params=list(QUEUES))
def queue(request: pytest.FixtureRequest, store: SqlJobStore, clock: FakeClock) -> QueueUnderTest:
    queue: QueueUnderTest = QUEUES[request.param](store, clock)
    return queue


def test_claims_take_the_oldest_claimable_item_once(queue: QueueUnderTest) -> None:
    ids = [queue.add() for _ in range(3)]
    claimed = [queue.claim() for _ in range(4)]
    assert [None if c is None else queue.item_id(c) for c in claimed] == [*ids, None]


def test_concurrent_claimers_never_share_an_item(
    queue: QueueUnderTest, db_url: str, clock: FakeClock
) -> None:
    """Six threads on two stores (two pools: two processes, as far as the database can tell)."""
    ids = {queue.add() for _ in range(24)}
    other = type(queue)(SqlJobStore(db_url, pool_size=3, clock=clock), clock)
    claimers = [queue, other]
    start = threading.Barrier(6)
    claimed: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        claimer = claimers[n % 2]
        try:
            start.wait()
            while (held := claimer.claim()) is not None:
                with lock:
                    claimed.append(claimer.item_id(held))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        other.store.close()
    assert errors == []
    assert set(claimed) == ids and max(Counter(claimed).values()) == 1


def test_a_claim_in_flight_is_skipped_not_shared(queue: QueueUnderTest, clock: FakeClock) -> None:
    """A claimer whose transaction has not committed yet holds its row: PostgreSQL hands the
    next claimer the next row at once (SKIP LOCKED); SQLite makes it wait for the commit."""
    first, second = queue.add(), queue.add()
    writer = queue.store.engine.execution_options(**write_options())
    in_flight, got, committed = threading.Event(), threading.Event(), threading.Event()
    taken: list[str] = []

    def hold_a_claim() -> None:
        with writer.begin() as conn:
            claim = queue.queue.claim(conn, now=clock.now, lease_seconds=LEASE, values={})
            assert claim is not None
            taken.append(claim.row[queue.queue.id_column])
            in_flight.set()
            got.wait(5 if queue.store.dialect == "postgresql" else 0.2)
        committed.set()

    holder = threading.Thread(target=hold_a_claim)
    holder.start()
    try:
        assert in_flight.wait(30)
        held = queue.claim()
        claimed_before_the_commit = not committed.is_set()
        got.set()
    finally:
        holder.join(30)
    assert taken == [first]
    assert held is not None and queue.item_id(held) == second
    if queue.store.dialect == "postgresql":
        assert claimed_before_the_commit, "skipped the locked row instead of waiting on it"
    assert queue.claim() is None


def test_an_expired_lease_is_claimable_again(queue: QueueUnderTest, clock: FakeClock) -> None:
    item = queue.add()
    first = queue.claim()
    assert first is not None and queue.claim() is None, "held: nobody else gets it"
    clock.advance(LEASE - 1)
    assert queue.claim() is None, "not yet expired"
    clock.advance(2)
    again = queue.claim()
    assert again is not None and queue.item_id(again) == item, "expired: claimed again"
    assert token_of(queue, again) != token_of(queue, first), "under a new token"
    assert queue.claim() is None


def token_of(queue: QueueUnderTest, held: Any) -> str:
    """The lease token a claim handed out (``Lease.token``, ``lease_token``, ``lock_token``)."""
    return str(held.token if isinstance(held, Lease) else getattr(held, queue.queue.token_column))


@pytest.fixture(params=["jobs", "renders"])
def renewable(request: pytest.FixtureRequest, store: SqlJobStore, clock: FakeClock) -> QueueUnderTest:
    """The queues whose holders renew (a delivery's lock covers one send, so it is never renewed)."""
    queue: QueueUnderTest = QUEUES[request.param](store, clock)
    return queue


def test_renew_extends_the_lease_and_fails_for_a_stale_token(
    renewable: QueueUnderTest, clock: FakeClock
) -> None:
    queue = renewable
    queue.add()
    held = queue.claim()
    assert held is not None
    clock.advance(LEASE - 2)
    queue.renew(held)
    clock.advance(LEASE - 2)
    assert queue.claim() is None, "renewed: still held past the first expiry"
    before = queue.row(queue.item_id(held))
    with pytest.raises(LeaseLost):
        queue.renew(queue.stale(held))
    assert queue.row(queue.item_id(held)) == before, "a refused renewal writes nothing"
    clock.advance(3)
    taken_over = queue.claim()
    assert taken_over is not None, "not renewed again: it lapses"
    with pytest.raises(LeaseLost):
        queue.renew(held)


def test_a_holder_of_a_row_no_longer_running_writes_nothing(renewable: QueueUnderTest) -> None:
    """The fence also requires ``running``: a row put back to ``queued`` by hand, its token
    left in place, is no longer held."""
    queue = renewable
    item = queue.add()
    held = queue.claim()
    assert held is not None
    table = queue.queue.table
    with queue.store.engine.begin() as conn:
        conn.execute(update(table).where(table.c[queue.queue.id_column] == item).values(status="queued"))
    before = queue.row(item)
    with pytest.raises(LeaseLost):
        queue.renew(held)
    assert not queue.finish(held)
    assert queue.row(item) == before


def test_a_stale_holder_writes_nothing(queue: QueueUnderTest, clock: FakeClock) -> None:
    item = queue.add()
    first = queue.claim()
    assert first is not None
    clock.advance(LEASE + 1)
    second = queue.claim()
    assert second is not None and queue.item_id(second) == item
    before = queue.row(item)
    assert not queue.finish(first), "the lease was taken over"
    assert not queue.finish(queue.stale(second)), "a token that never held it"
    assert queue.row(item) == before
    assert queue.finish(second)
    assert queue.row(item)[queue.queue.token_column] is None, "settled: the lease ends"
    assert not queue.finish(second), "and its holder cannot write again"


def test_a_stale_holder_leaves_no_trace_beside_the_row(store: SqlJobStore, clock: FakeClock) -> None:
    """What a fenced finish writes besides the row (results, an attempt log) is fenced too."""
    jobs, deliveries = Jobs(store, clock), Deliveries(store, clock)
    job_id, delivery_id = jobs.add(), deliveries.add()
    lease, delivery = jobs.claim(), deliveries.claim()
    assert lease is not None and delivery is not None
    assert not jobs.finish(jobs.stale(lease)) and store.get_results(job_id) is None
    assert not deliveries.finish(deliveries.stale(delivery))
    [logged] = [d for d in deliveries.hooks.for_job(delivery.job_id) if d.id == delivery_id]
    assert logged.log == [] and logged.status is DeliveryStatus.PENDING


@pytest.mark.parametrize("max_attempts", [1, 2])
def test_render_claims_stop_at_render_max_attempts(store: SqlJobStore, max_attempts: int) -> None:
    """``render_max_attempts`` reaches the store through the factory."""
    renders = open_render_store(Settings(render_max_attempts=max_attempts), store)
    job, _ = store.create_job(new_job())
    renders.request(job.id)
    claims = []
    # Leases born lapsed (the store keeps real time here): as if each worker died at once.
    while (held := renders.claim(-1.0)) is not None:
        claims.append(held.attempts)
    assert claims == list(range(1, max_attempts + 1))
    stuck = renders.get(job.id)
    assert stuck is not None and (stuck.status, stuck.attempts) == (RenderStatus.RUNNING, max_attempts)


@pytest.mark.parametrize("max_attempts", [1, 3])
def test_a_failed_render_is_queued_again_until_its_last_attempt(
    store: SqlJobStore, clock: FakeClock, max_attempts: int
) -> None:
    renders = RenderStore(store.engine, max_attempts=max_attempts, clock=clock)
    job, _ = store.create_job(new_job())
    renders.request(job.id)
    for attempt in range(1, max_attempts + 1):
        held = renders.claim(LEASE)
        assert held is not None and held.attempts == attempt
        assert renders.finish(held, error="boom")
    assert renders.claim(LEASE) is None
    failed = renders.get(job.id)
    assert failed is not None and (failed.status, failed.error) == (RenderStatus.FAILED, "boom")


def test_claimed_rows_carry_their_lease(queue: QueueUnderTest, clock: FakeClock) -> None:
    item = queue.add()
    held = queue.claim()
    assert held is not None
    row = queue.row(item)
    assert row[queue.queue.token_column] == token_of(queue, held)
    assert row[queue.queue.expiry_column] == clock.now + LEASE
