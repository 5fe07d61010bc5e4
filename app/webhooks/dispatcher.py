"""The delivery loop: runs in every worker process (a thread next to the job loop),
sends due webhooks, retries failures with exponential backoff, logs every attempt.

Success is a 2xx answer; anything else (other statuses, redirects, timeouts, refused
connections) is retried after ``backoff * 2**(attempt-1)`` seconds (jittered, capped,
at least the receiver's ``Retry-After``) until ``webhook_max_attempts``; so is a target
that does not resolve, or resolves to a refused address, at send time. The body was
rendered when the delivery was queued, so every retry sends the same bytes.

Each send resolves the host, checks every address (``urls.pin``) and connects to a
checked one: the URL's host is replaced by the address, with the original ``Host``
header and, for https, the original name as SNI and for certificate verification. A
refused or unreachable address (``httpx.ConnectError``) moves on to the next checked one,
as a connect by name would.
Connections are not kept alive, so a TLS connection verified for one name is never
reused for another name on the same address.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

import httpx

from app import __version__
from app.domain import DeliveryStatus
from app.errors import InvalidOptions, ServiceError
from app.job_json import webhook_body
from app.settings import Settings
from app.store.base import JobStore
from app.store.webhooks import Delivery, WebhookStore
from app.webhooks import signing
from app.webhooks.urls import Resolver, Target, parse_networks, pin, resolve

log = logging.getLogger(__name__)

LOCK_MARGIN_SECONDS = 30.0


def backoff_seconds(
    attempt: int, settings: Settings, *, retry_after: float = 0.0, jitter: float = 0.5
) -> float:
    """Delay after failed attempt number ``attempt`` (1-based); ``jitter`` in [0, 1)."""
    base = settings.webhook_backoff_seconds * 2.0 ** (attempt - 1)
    delay = min(settings.webhook_backoff_max_seconds, base) * (0.75 + 0.5 * jitter)
    return min(settings.webhook_backoff_max_seconds, max(delay, retry_after))


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "0")))
    except ValueError:
        return 0.0


class Dispatcher:
    def __init__(
        self,
        *,
        jobs: JobStore,
        hooks: WebhookStore,
        settings: Settings,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        resolver: Resolver = resolve,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.jobs, self.hooks, self.settings = jobs, hooks, settings
        self._clock, self._resolver, self._rng = clock, resolver, rng
        self._allowed = parse_networks(settings.webhook_allowed_networks)
        self._client = httpx.Client(
            transport=transport,
            timeout=settings.webhook_timeout_seconds,
            follow_redirects=False,
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"User-Agent": f"video-analysis-service/{__version__} (webhook)"},
        )

    def run_once(self) -> bool:
        """Send one due delivery; False when none was due."""
        delivery = self.hooks.claim_due(self.settings.webhook_timeout_seconds + LOCK_MARGIN_SECONDS)
        if delivery is None:
            return False
        self._deliver(delivery)
        return True

    def run(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            try:
                worked = self.run_once()
            except ServiceError as exc:  # database away: try again later
                log.warning("webhook loop: %s", exc)
                worked = False
            except Exception:
                log.exception("webhook loop crashed; continuing")
                worked = False
            if not worked:
                stopping.wait(self.settings.webhook_poll_interval)

    def close(self) -> None:
        self._client.close()

    def _legacy_body(self, delivery: Delivery) -> str | None:
        """Rows queued before revision 0004 have no body: render the job as it is now."""
        job = self.jobs.get_job(delivery.job_id)
        return None if job is None else webhook_body(job, delivery.event, delivery.id)

    def _send(self, target: Target, raw: bytes, headers: dict[str, str]) -> httpx.Response:
        """POST to the first checked address that accepts the connection, keeping the URL's
        name for Host, SNI and the certificate; the last ConnectError when none does."""
        url = httpx.URL(target.url)
        headers = {**headers, "Host": url.netloc.decode("ascii")}
        extensions = {"sni_hostname": url.raw_host.decode("ascii")} if url.scheme == "https" else {}
        *fallbacks, last = target.addresses
        for address in fallbacks:
            try:
                return self._post(url.copy_with(host=address), raw, headers, extensions)
            except httpx.ConnectError as exc:
                log.info("webhook: %s did not connect (%s); trying the next address", address, exc)
        return self._post(url.copy_with(host=last), raw, headers, extensions)

    def _post(
        self, url: httpx.URL, raw: bytes, headers: dict[str, str], extensions: dict[str, str]
    ) -> httpx.Response:
        request = self._client.build_request("POST", url, content=raw, headers=headers, extensions=extensions)
        response = self._client.send(request, stream=True)
        response.close()  # the status and headers are all we read
        return response

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
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            signing.EVENT_HEADER: delivery.event,
            signing.DELIVERY_HEADER: delivery.id,
            signing.TIMESTAMP_HEADER: str(timestamp),
            signing.SIGNATURE_HEADER: signing.signature(owner.secret, timestamp, raw),
        }
        t0 = time.perf_counter()
        status_code: int | None = None
        retry_after = 0.0
        try:
            response = self._send(pin(delivery.url, self._allowed, resolver=self._resolver), raw, headers)
            status_code = response.status_code
            retry_after = _retry_after(response)
            error = None if 200 <= status_code < 300 else f"HTTP {status_code}"
        except InvalidOptions as exc:  # no longer resolves, or resolves somewhere refused
            error = exc.detail
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
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
            delay = backoff_seconds(attempt, self.settings, retry_after=retry_after, jitter=self._rng())
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

    def run() -> None:
        try:
            dispatcher.run(stopping)
        finally:
            dispatcher.close()

    thread = threading.Thread(target=run, name="webhooks", daemon=True)
    thread.start()
    return thread
