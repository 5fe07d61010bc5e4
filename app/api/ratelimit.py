"""Per-tenant limits, counted in the database so that they hold across API replicas.

| limit (setting)                | window            | checked                                   |
|--------------------------------|-------------------|-------------------------------------------|
| ``tenant_requests_per_second`` | fixed, 1 s        | every /v1 request, after authentication    |
| ``tenant_max_active_jobs``     | (queued+running)  | before an upload's body is read            |
| ``tenant_bytes_per_day``       | fixed, UTC day    | before the body (used, declared length) and after it (exact size) |

Every refusal is ``RateLimited`` (429 with ``Retry-After``). 0 turns a limit off.
The request and byte counters are ``UsageStore`` rows bumped by a conditional upsert;
the active-jobs count is a query on the jobs table. That count is read before the
upload and the row is inserted after it, so simultaneous submissions of one tenant
may overshoot it by the number of uploads in flight.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from app.api.auth import PrincipalDep
from app.api.upload import MULTIPART_SLACK
from app.errors import InsufficientStorage, RateLimited
from app.settings import Settings
from app.store.base import JobStore
from app.store.usage import UsageStore

log = logging.getLogger(__name__)

REQUESTS = "requests"
UPLOAD_BYTES = "upload_bytes"
DAY_SECONDS = 86_400
ACTIVE_JOBS_RETRY_AFTER = 10
PURGE_EVERY_SECONDS = 60.0


class TenantLimiter:
    """Synchronous (it talks to the database): call it from a thread pool."""

    def __init__(
        self,
        settings: Settings,
        usage: UsageStore,
        store: JobStore,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings, self.usage, self.store = settings, usage, store
        self.clock = clock
        self._last_purge = 0.0

    def check_request(self, tenant: str) -> None:
        limit = self.settings.tenant_requests_per_second
        if not limit:
            return
        now = self.clock()
        window = math.floor(now)
        self._purge_now_and_then(now)
        if not self.usage.consume(tenant, REQUESTS, window, 1, limit=limit, expires_at=window + 2.0):
            raise RateLimited(
                f"more than {limit} requests per second for this tenant",
                limit="requests_per_second",
                retry_after=math.ceil(window + 1 - now),
            )

    def check_submission(self, tenant: str, declared_bytes: int | None = None) -> None:
        """Before the upload is read: the active-jobs limit, and the daily bytes as far as
        they are known (already used, plus the body's Content-Length if it was sent)."""
        active_limit = self.settings.tenant_max_active_jobs
        if active_limit and self.store.count_active(tenant) >= active_limit:
            raise RateLimited(
                f"this tenant already has {active_limit} queued or running jobs",
                limit="active_jobs",
                retry_after=ACTIVE_JOBS_RETRY_AFTER,
            )
        byte_limit = self.settings.tenant_bytes_per_day
        if not byte_limit:
            return
        day, retry_after = self._day()
        used = self.usage.used(tenant, UPLOAD_BYTES, day)
        body_floor = None if declared_bytes is None else declared_bytes - MULTIPART_SLACK
        if used >= byte_limit or (body_floor is not None and used + body_floor > byte_limit):
            raise self._bytes_refused(byte_limit, retry_after)

    def charge_upload(self, tenant: str, size: int) -> None:
        """After the body is read: count its bytes, or refuse it if they do not fit."""
        byte_limit = self.settings.tenant_bytes_per_day
        if not byte_limit:
            return
        day, retry_after = self._day()
        expires = day + 2.0 * DAY_SECONDS
        self._purge_now_and_then(self.clock())
        if not self.usage.consume(tenant, UPLOAD_BYTES, day, size, limit=byte_limit, expires_at=expires):
            raise self._bytes_refused(byte_limit, retry_after)

    def _purge_now_and_then(self, now: float) -> None:
        """Ended windows go at most once a minute per replica (any replica may do it)."""
        if now - self._last_purge > PURGE_EVERY_SECONDS:
            self._last_purge = now
            self.usage.purge_expired(now)

    def _day(self) -> tuple[int, int]:
        now = self.clock()
        day = math.floor(now / DAY_SECONDS) * DAY_SECONDS
        return day, math.ceil(day + DAY_SECONDS - now)

    @staticmethod
    def _bytes_refused(limit: int, retry_after: int) -> RateLimited:
        return RateLimited(
            f"this upload would take the tenant over its {limit} bytes per day",
            limit="bytes_per_day",
            retry_after=retry_after,
        )


async def limit_requests(request: Request, principal: PrincipalDep) -> None:
    """Dependency of every /v1 router: counts the request against the tenant's rate.
    It depends on ``authenticate``, so a missing key is a 401 before it is counted."""
    settings: Settings = request.app.state.settings
    if settings.tenant_requests_per_second:
        limiter: TenantLimiter = request.app.state.limiter
        try:
            await run_in_threadpool(limiter.check_request, principal.tenant)
        except InsufficientStorage:
            # The counter cannot be written on a full disk; the request still can be served
            # (a DELETE is how space comes back), so it goes uncounted.
            log.warning("request not counted: the disk is full", extra={"tenant": principal.tenant})


async def check_submission_quota(request: Request, principal: PrincipalDep) -> None:
    """Route dependency of ``POST /v1/jobs``: refuse before a byte of the body is read."""
    declared = request.headers.get("content-length")
    size = int(declared) if declared is not None and declared.isdigit() else None
    limiter: TenantLimiter = request.app.state.limiter
    await run_in_threadpool(limiter.check_submission, principal.tenant, size)


async def charge_upload(request: Request, tenant: str, size: int) -> None:
    """After the upload was received: count its bytes (raises RateLimited if over)."""
    limiter: TenantLimiter = request.app.state.limiter
    await run_in_threadpool(limiter.charge_upload, tenant, size)
