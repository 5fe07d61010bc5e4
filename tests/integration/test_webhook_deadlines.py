"""Issue 12, item 4: a receiver that drips its answer one header byte at a time (each read
well inside the timeout) must not keep a send going past its deadline, nor hold up anyone
else's webhooks. Real loopback receivers, the real delivery loop (``Dispatcher.run``, as the
worker's thread runs it), short settings so it takes seconds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from app.domain import DeliveryStatus
from app.store.sql import SqlJobStore
from app.store.webhooks import Delivery, WebhookStore
from app.webhooks.dispatcher import Dispatcher
from tests.integration.conftest import Service, submit
from tests.integration.receivers import Dripping, Receiver, dripping, serving

pytestmark = pytest.mark.anyio

TIMEOUT = 1.0
BACKOFF = 1.5
SHORT = {
    "webhook_allowed_networks": "127.0.0.0/8",
    "webhook_timeout_seconds": TIMEOUT,
    "webhook_backoff_seconds": BACKOFF,
    "webhook_max_attempts": 2,
    "webhook_concurrency": 4,
    "webhook_poll_interval": 0.05,
}
SLACK = 0.5
"""Scheduling slack on a loaded 2-CPU machine, far below what the failures looked like."""


def wait_for(condition: Callable[[], bool], failure: str, timeout: float) -> float:
    """Poll until ``condition()``; the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, failure
        time.sleep(0.01)
    return time.monotonic()


def hooks(service: Service) -> WebhookStore:
    store = service.store
    assert isinstance(store, SqlJobStore)
    return WebhookStore(store.engine)


def only_delivery(service: Service, job_id: str) -> Delivery:
    [delivery] = hooks(service).for_job(job_id)
    return delivery


async def canceled_job(service: Service, clip: Path, url: str) -> str:
    """A job whose ``job.canceled`` webhook to ``url`` is queued."""
    job_id: str = (await submit(service, clip, callback_url=url)).json()["id"]
    assert (await service.client.delete(f"/v1/jobs/{job_id}")).status_code == 204
    return job_id


@contextmanager
def delivery_loop(sender: Dispatcher) -> Iterator[None]:
    stopping = threading.Event()
    thread = threading.Thread(target=sender.run, args=(stopping,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopping.set()
        thread.join(timeout=TIMEOUT + 5)
        assert not thread.is_alive(), "the delivery loop did not stop within a send's deadline"


@pytest.mark.settings(**SHORT)
async def test_a_dripping_receiver_times_out_on_deadline_and_holds_up_nobody(
    service: Service, short_clip: Path
) -> None:
    slow, fast = Dripping(interval=0.3), Receiver()
    with dripping(slow) as slow_port, serving(fast) as fast_port:
        slow_job = await canceled_job(service, short_clip, f"http://127.0.0.1:{slow_port}/slow")
        fast_job = await canceled_job(service, short_clip, f"http://127.0.0.1:{fast_port}/fast")
        sender = Dispatcher(
            jobs=service.store, hooks=hooks(service), settings=service.settings, rng=lambda: 0.5
        )  # jitter 0.5: the retry comes exactly BACKOFF seconds after the failure
        with delivery_loop(sender):
            # The slow delivery is due first and claimed first; the fast one goes out beside it.
            wait_for(lambda: bool(fast.requests), "the fast receiver's webhook was held up", 5 * TIMEOUT)
            [first] = slow.connections
            assert first.closed_at is None, "the fast webhook arrived while the slow one was dripping"
            assert fast.arrived_at[0] - first.arrived_at < TIMEOUT
            wait_for(
                lambda: only_delivery(service, fast_job).status is DeliveryStatus.DELIVERED,
                "the fast delivery was not recorded as delivered",
                TIMEOUT,
            )

            # The slow send ends at its deadline, and its attempt is recorded as a timeout.
            recorded = wait_for(
                lambda: only_delivery(service, slow_job).attempts == 1,
                "the slow delivery's attempt was not recorded",
                TIMEOUT + 30,
            )
            assert recorded - first.arrived_at < TIMEOUT + SLACK
            assert first.closed_at is not None and first.closed_at - first.arrived_at < TIMEOUT + SLACK
            pending = only_delivery(service, slow_job)
            [attempt] = pending.log
            assert pending.status is DeliveryStatus.PENDING
            assert attempt.status_code is None and attempt.error is not None
            assert attempt.error.startswith("timeout"), attempt.error
            assert TIMEOUT * 1000 - 50 < attempt.duration_ms < (TIMEOUT + SLACK) * 1000

            # Not sent again before its backoff; then again, as the same delivery, and given up.
            wait_for(
                lambda: only_delivery(service, slow_job).status is DeliveryStatus.FAILED,
                "the retry did not come and time out",
                BACKOFF + 2 * TIMEOUT + 5,
            )
        first_sent, second_sent = slow.connections
        assert second_sent.arrived_at - first.closed_at >= BACKOFF - 0.1
        assert first_sent.headers["x-vas-delivery"] == second_sent.headers["x-vas-delivery"] == pending.id
        failed = only_delivery(service, slow_job)
        assert failed.attempts == 2 and all(a.error and a.error.startswith("timeout") for a in failed.log)
        assert len(fast.requests) == 1


@pytest.mark.settings(**SHORT)
async def test_a_name_lookup_that_hangs_counts_against_the_deadline(
    service: Service, short_clip: Path
) -> None:
    """``getaddrinfo`` has no timeout of its own: a hung resolver must not stretch the send
    past its deadline either."""
    job_id = await canceled_job(service, short_clip, "http://receiver.invalid:8080/hooks")
    released = threading.Event()

    def hanging(host: str, port: int) -> list[str]:
        released.wait(10)
        return ["127.0.0.1"]

    sender = Dispatcher(jobs=service.store, hooks=hooks(service), settings=service.settings, resolver=hanging)
    try:
        started = time.monotonic()
        assert sender.run_once()
        assert time.monotonic() - started < TIMEOUT + SLACK
    finally:
        released.set()
    [attempt] = only_delivery(service, job_id).log
    assert attempt.error == "callback_url host 'receiver.invalid' did not resolve in time"
