"""The delivery loop: runs in every worker process (a thread next to the job loop, sending
up to ``webhook_concurrency`` deliveries at once, so one slow receiver cannot hold up the
others), retries failures with exponential backoff, logs every attempt.

Success is a 2xx answer; anything else (other statuses, redirects, timeouts, refused
connections) is retried after ``backoff * 2**(attempt-1)`` seconds (jittered, capped,
at least the receiver's ``Retry-After``) until ``webhook_max_attempts``; so is a target
that does not resolve, or resolves to a refused address, at send time. The body was
rendered when the delivery was queued, so every retry sends the same bytes.

A send (lookup, connect, request and the answer's headers) has one deadline,
``webhook_timeout_seconds`` (``app.webhooks.deadline``), shorter than the lock its claim
holds, so its attempt is always recorded by its own sender and a delivery is never sent
twice at once. Each send resolves the host, checks every address (``urls.pin``) and
connects to a checked one (``posting.post``).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from ssl import SSLContext

import httpcore
import httpx

from app import __version__
from app.domain import DeliveryStatus
from app.errors import InvalidOptions, ServiceError
from app.job_json import webhook_body
from app.settings import Settings
from app.store.base import JobStore
from app.store.webhooks import Delivery, WebhookStore
from app.webhooks import signing
from app.webhooks.deadline import Deadline, resolve_within
from app.webhooks.posting import SEND_ERRORS, post
from app.webhooks.urls import Resolver, parse_networks, pin, resolve

log = logging.getLogger(__name__)

LOCK_MARGIN_SECONDS = 30.0
"""A claim's lock outlasts the send's deadline by this much: time to record the attempt."""
USER_AGENT = f"video-analysis-service/{__version__} (webhook)"


def backoff_seconds(
    attempt: int, settings: Settings, *, retry_after: float = 0.0, jitter: float = 0.5
) -> float:
    """Delay after failed attempt number ``attempt`` (1-based); ``jitter`` in [0, 1)."""
    base = settings.webhook_backoff_seconds * 2.0 ** (attempt - 1)
    delay = min(settings.webhook_backoff_max_seconds, base) * (0.75 + 0.5 * jitter)
    return min(settings.webhook_backoff_max_seconds, max(delay, retry_after))


@dataclass(frozen=True)
class SendOutcome:
    """What one send came to: the receiver's status (None when none came), the
    ``Retry-After`` it asked for, and the error to log (None on success)."""

    status_code: int | None
    retry_after: float
    error: str | None


class Dispatcher:
    def __init__(
        self,
        *,
        jobs: JobStore,
        hooks: WebhookStore,
        settings: Settings,
        ssl_context: SSLContext | None = None,
        clock: Callable[[], float] = time.time,
        resolver: Resolver = resolve,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.jobs, self.hooks, self.settings = jobs, hooks, settings
        self._clock, self._resolver, self._rng = clock, resolver, rng
        self._allowed = parse_networks(settings.webhook_allowed_networks)
        self._ssl_context = ssl_context if ssl_context is not None else httpx.create_ssl_context()

    def run_once(self) -> bool:
        """Send one due delivery in this thread; False when none was due."""
        delivery = self._claim()
        if delivery is None:
            return False
        self._deliver(delivery)
        return True

    def run(self, stopping: threading.Event) -> None:
        """Claim a due delivery whenever one of ``webhook_concurrency`` send slots is free and
        send it on that slot; on ``stopping``, let the sends under way finish (each within
        its deadline) and return."""
        concurrency = self.settings.webhook_concurrency
        slots = threading.BoundedSemaphore(concurrency)
        with ThreadPoolExecutor(concurrency, thread_name_prefix="webhook-send") as senders:
            while not stopping.is_set():
                if not slots.acquire(timeout=self.settings.webhook_poll_interval):
                    continue  # every slot busy
                delivery = self._claim_or_log()
                if delivery is None:
                    slots.release()
                    stopping.wait(self.settings.webhook_poll_interval)
                    continue
                sending = senders.submit(self._deliver_or_log, delivery)
                sending.add_done_callback(lambda _: slots.release())

    def _claim(self) -> Delivery | None:
        return self.hooks.claim_due(self.settings.webhook_timeout_seconds + LOCK_MARGIN_SECONDS)

    def _claim_or_log(self) -> Delivery | None:
        try:
            return self._claim()
        except ServiceError as exc:  # database away: try again later
            log.warning("webhook loop: %s", exc)
        except Exception:
            log.exception("webhook loop: claiming crashed; continuing")
        return None

    def _deliver_or_log(self, delivery: Delivery) -> None:
        try:
            self._deliver(delivery)
        except ServiceError as exc:  # not recorded: the delivery is sent again once its lock lapses
            log.warning("webhook %s: %s", delivery.id, exc, extra={"job_id": delivery.job_id})
        except Exception:
            log.exception("webhook %s: sending crashed", delivery.id, extra={"job_id": delivery.job_id})

    def _legacy_body(self, delivery: Delivery) -> str | None:
        """Rows queued before revision 0004 have no body: render the job as it is now."""
        job = self.jobs.get_job(delivery.job_id)
        return None if job is None else webhook_body(job, delivery.event, delivery.id)

    def _headers(self, delivery: Delivery, secret: str, raw: bytes) -> dict[str, str]:
        timestamp = int(self._clock())
        return {
            "User-Agent": USER_AGENT,
            "Content-Type": "application/json",
            signing.EVENT_HEADER: delivery.event,
            signing.DELIVERY_HEADER: delivery.id,
            signing.TIMESTAMP_HEADER: str(timestamp),
            signing.SIGNATURE_HEADER: signing.signature(secret, timestamp, raw),
        }

    def _send(self, delivery: Delivery, raw: bytes, headers: dict[str, str]) -> SendOutcome:
        """Resolve, check and POST under one deadline."""
        timeout = self.settings.webhook_timeout_seconds
        deadline = Deadline(timeout)
        try:
            target = pin(delivery.url, self._allowed, resolver=resolve_within(self._resolver, deadline))
            answer = post(target, raw, headers, deadline=deadline, ssl_context=self._ssl_context)
        except InvalidOptions as exc:  # no longer resolves, or resolves somewhere refused
            return SendOutcome(None, 0.0, exc.detail)
        except httpcore.TimeoutException as exc:
            error = f"timeout: no answer within {timeout:g} s ({type(exc).__name__}: {exc})"
            return SendOutcome(None, 0.0, error[:500])
        except SEND_ERRORS as exc:
            return SendOutcome(None, 0.0, f"{type(exc).__name__}: {exc}"[:500])
        status = answer.status_code
        return SendOutcome(status, answer.retry_after, None if 200 <= status < 300 else f"HTTP {status}")

    def _deliver(self, delivery: Delivery) -> None:
        extra = {"job_id": delivery.job_id}
        started = self._clock()
        body = delivery.body
        if body is None:
            body = self._legacy_body(delivery)
            if body is None:
                self._finish(delivery, started, 0.0, None, "the job no longer exists", DeliveryStatus.FAILED)
                return
            self.hooks.save_body(delivery, body)
        owner = self.hooks.get_owner(delivery.owner)
        if owner is None:
            reason = "no signing secret for this delivery's owner"
            self._finish(delivery, started, 0.0, None, reason, DeliveryStatus.FAILED)
            return
        raw = body.encode("utf-8")
        t0 = time.perf_counter()
        outcome = self._send(delivery, raw, self._headers(delivery, owner.secret, raw))
        status_code, error = outcome.status_code, outcome.error
        duration_ms = (time.perf_counter() - t0) * 1000
        attempt = delivery.attempts + 1
        if error is None:
            self._finish(delivery, started, duration_ms, status_code, None, DeliveryStatus.DELIVERED)
            log.info("webhook %s delivered to %s", delivery.event, delivery.url, extra=extra)
        elif attempt >= self.settings.webhook_max_attempts:
            self._finish(delivery, started, duration_ms, status_code, error, DeliveryStatus.FAILED)
            log.warning(
                "webhook %s failed after %d attempts: %s", delivery.event, attempt, error, extra=extra
            )
        else:
            delay = backoff_seconds(
                attempt, self.settings, retry_after=outcome.retry_after, jitter=self._rng()
            )
            retry_at = self._clock() + delay
            self._finish(delivery, started, duration_ms, status_code, error, DeliveryStatus.PENDING, retry_at)
            log.info(
                "webhook %s attempt %d: %s; retry in %.1fs",
                delivery.event,
                attempt,
                error,
                delay,
                extra=extra,
            )

    def _finish(
        self,
        delivery: Delivery,
        started: float,
        duration_ms: float,
        status_code: int | None,
        error: str | None,
        status: DeliveryStatus,
        next_attempt_at: float | None = None,
    ) -> None:
        recorded = self.hooks.record(
            delivery,
            started_at=started,
            duration_ms=duration_ms,
            status_code=status_code,
            error=error,
            status=status,
            next_attempt_at=next_attempt_at,
        )
        if not recorded:
            log.warning(
                "webhook %s: lock lost before recording", delivery.id, extra={"job_id": delivery.job_id}
            )


def start_dispatcher(
    store: JobStore, settings: Settings, stopping: threading.Event
) -> threading.Thread | None:
    """The worker's delivery thread (None when the job store is not the SQL one)."""
    from app.store.sql import SqlJobStore

    if not isinstance(store, SqlJobStore):
        return None
    dispatcher = Dispatcher(jobs=store, hooks=WebhookStore(store.engine), settings=settings)
    thread = threading.Thread(target=dispatcher.run, args=(stopping,), name="webhooks", daemon=True)
    thread.start()
    return thread
