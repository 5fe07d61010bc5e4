"""A worker on a full disk pauses: one ERROR line that says what to do, then slow retries.

Without it, SQLite's "database or disk is full" on a claim was "database unavailable",
logged as a warning every few seconds without end, which sends an operator looking for
a database outage. Jobs are not failed: a failure could not be written either, and a
queued job loses nothing by waiting. The worker resumes (and says so) once a write works.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from app.errors import InsufficientStorage

log = logging.getLogger("app.worker.runner")
"""The runner's logger: the pause is part of its loop, and log filters rely on the name."""

RETRY_SECONDS = 30.0
"""How often a paused worker tries again (a submission or ``wake`` tries at once)."""


class DiskFullPause:
    def __init__(self, worker_id: str, data_dir: Path) -> None:
        self._extra = {"worker_id": worker_id}
        self._data_dir = data_dir
        self._since: float | None = None

    def paused(self, exc: InsufficientStorage) -> float:
        """Log the first failure of a pause; returns how long to wait before the next try."""
        if self._since is None:
            self._since = time.monotonic()
            log.error(
                "worker paused: %s. Free space on the disk of the data dir (%s) or of the database "
                "(delete finished jobs with DELETE /v1/jobs/{id}, set VAS_RETENTION_DAYS, or grow "
                "the volume); queued jobs wait and none is lost. Retrying every %gs.",
                exc.detail,
                self._data_dir,
                RETRY_SECONDS,
                extra=self._extra,
            )
        return RETRY_SECONDS

    def resumed(self) -> None:
        """After a unit of work went through: ends a pause, if there was one."""
        if self._since is not None:
            paused_for = time.monotonic() - self._since
            self._since = None
            log.info("worker resumed: the disk has space again (paused %.0fs)", paused_for, extra=self._extra)
