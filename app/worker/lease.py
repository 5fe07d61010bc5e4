"""Keeps a claimed job's lease alive from a background thread while the engine works."""

from __future__ import annotations

import logging
import threading

from app.domain import Lease
from app.errors import LeaseLost, ServiceError
from app.store.base import JobStore

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews ``lease`` every ``lease_seconds / 3``; sets ``lost`` when the store refuses.

    The worker checks ``lost`` at every batch boundary, so a job that was canceled
    or taken over after an expiry stops promptly and never writes again.
    """

    def __init__(self, store: JobStore, lease: Lease, lease_seconds: float) -> None:
        self._store, self.lease, self._seconds = store, lease, lease_seconds
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{lease.job.id[:8]}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._seconds / 3):
            try:
                self.lease = self._store.renew(self.lease, self._seconds)
            except LeaseLost:
                log.warning("lease lost", extra={"job_id": self.lease.job.id})
                self.lost.set()
                return
            except ServiceError as exc:  # database away: keep trying until the lease would expire
                log.warning("lease renewal failed: %s", exc, extra={"job_id": self.lease.job.id})
