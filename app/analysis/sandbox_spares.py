"""Sandboxed children started ahead of the work that will use them: a job's decode children
(``decode_children`` of them) and the upload probe's child (``probe_sandbox``).

A decode child spends about half a CPU-second loading Python, numpy, PyAV and the decode
modules before it reads its first message; in a warm worker that start sits on every job's
critical path, once per child (the second child starts only when the scan is known). A
spare is started while no job waits for it. It has not seen any video: taking a spare is
as safe as starting a child for the job (one that decoded a file is never reused). The job
sends it its config and then its shared-memory ring over the socket (``SCM_RIGHTS``).

Spares are started on a thread of their own that lives until ``close()`` (or until this
object is garbage-collected), because a child dies with the thread that started it
(``PR_SET_PDEATHSIG``). The caller decides when to ``refill``: a worker between jobs, so
that starting the next spares never competes with the job that took them (a one-job CLI run
starts its children early instead: ``early_decode``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from app.analysis.sandbox_process import SandboxChild

log = logging.getLogger(__name__)


class SpareChildren:
    """Up to ``count`` started children (``start`` makes one), taken one at a time."""

    def __init__(
        self, count: int, start: Callable[[], SandboxChild] = SandboxChild, role: str = "decode"
    ) -> None:
        self.count, self._start, self.role = count, start, role
        self._lock = threading.Lock()
        self._spares: list[Future[SandboxChild]] = []
        self._spawner: ThreadPoolExecutor | None = None
        self._closed = False

    def refill(self, count: int | None = None) -> None:
        """Start children until ``count`` (default: all ``self.count``) are waiting."""
        with self._lock:
            if self._closed:
                return
            missing = (self.count if count is None else count) - len(self._spares)
            if missing <= 0:
                return
            if self._spawner is None:
                self._spawner = ThreadPoolExecutor(1, thread_name_prefix=f"{self.role}-spawner")
            self._spares.extend(self._spawner.submit(self._start) for _ in range(missing))

    def take(self) -> SandboxChild | None:
        """A started spare, or None (none waiting, or it failed to start or died)."""
        with self._lock:
            if not self._spares:
                return None
            spare = self._spares.pop(0)
        try:
            child = spare.result()
        except OSError as exc:
            log.warning("could not start a spare %s process: %s", self.role, exc)
            return None
        if child.alive():
            return child
        child.close()
        return None

    @property
    def closed(self) -> bool:
        return self._closed

    def waiting(self) -> int:
        with self._lock:
            return len(self._spares)

    def close(self) -> None:
        """Stop the spares (their thread ends, and so do they); ``refill`` does nothing after."""
        with self._lock:
            self._closed = True
            spares, self._spares = self._spares, []
            spawner, self._spawner = self._spawner, None
        for spare in spares:
            try:
                spare.result().close()
            except OSError:
                pass
        if spawner is not None:
            spawner.shutdown(wait=True)
