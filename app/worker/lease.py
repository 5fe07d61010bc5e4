"""Keeps a claimed lease alive from a background thread while the work goes on: an
analysis job's (``JobStore.renew``) or an annotated video's (``RenderStore.renew``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from app.errors import LeaseLost, ServiceError

log = logging.getLogger(__name__)

L = TypeVar("L")


class LeaseKeeper(Generic[L]):
    """Renews ``lease`` with ``renew(lease, lease_seconds)`` every ``lease_seconds / 3``;
    sets ``lost`` when the store refuses (raises ``LeaseLost``).

    The worker checks ``lost`` at every batch boundary, so a job that was canceled
    or taken over after an expiry stops promptly and never writes again; a render
    simply records nothing (its finish is fenced by the same token).
    """

    def __init__(
        self, renew: Callable[[L, float], L], lease: L, lease_seconds: float, *, job_id: str
    ) -> None:
        self._renew, self.lease, self._seconds, self._job_id = renew, lease, lease_seconds, job_id
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id[:8]}", daemon=True)

    def __enter__(self) -> LeaseKeeper[L]:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._seconds / 3):
            try:
                self.lease = self._renew(self.lease, self._seconds)
            except LeaseLost:  # canceled (expected) or taken over: the worker says which
                log.info("lease renewal refused", extra={"job_id": self._job_id})
                self.lost.set()
                return
            except ServiceError as exc:  # database away: keep trying until the lease would expire
                log.warning("lease renewal failed: %s", exc, extra={"job_id": self._job_id})
