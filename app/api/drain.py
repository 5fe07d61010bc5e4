"""Graceful drain for API replicas behind a load balancer.

On the first SIGTERM ``DrainingServer`` marks the app draining, tells an embedded worker to
stop claiming (it finishes or releases its job), and keeps the listening socket open for
``drain_seconds``. Meanwhile ``/readyz`` answers 503 (so orchestrators that probe it stop
routing here), reads (GET/HEAD) are still served, and ``DrainMiddleware`` answers every new
write (an upload, a delete) with 503 + ``Retry-After`` + ``Connection: close`` *before reading
its body*, so a load balancer can pass it to another replica without anything having happened
here (nginx: ``proxy_next_upstream http_503 non_idempotent``, deploy/nginx.conf). Requests
already in flight, uploads included, carry on. Then uvicorn's own graceful shutdown runs: the
socket closes, in-flight requests finish (up to ``timeout_graceful_shutdown``), lifespan ends.
A second signal, or SIGINT (Ctrl-C), skips the wait.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.problems import problem

log = logging.getLogger(__name__)

ALWAYS_SERVED = frozenset({"/healthz", "/readyz", "/metrics"})
READS = frozenset({"GET", "HEAD", "OPTIONS"})


class DrainMiddleware:
    """503 for new writes while ``app.state.draining``; reads, probes and metrics still answer."""

    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and self.state.draining
            and scope["method"] not in READS
            and scope["path"] not in ALWAYS_SERVED
        ):
            response = problem(
                503,
                "draining",
                "Service unavailable",
                "this replica is shutting down; retry (another replica will answer)",
                {"Retry-After": "1", "Connection": "close"},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class DrainingServer(uvicorn.Server):
    """uvicorn.Server whose first exit signal starts a drain instead of stopping at once."""

    def __init__(self, config: uvicorn.Config, state: Any, drain_seconds: float) -> None:
        super().__init__(config)
        self._state, self._drain_seconds = state, drain_seconds
        self._drain_timer: threading.Timer | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig != signal.SIGTERM or self._drain_timer is not None or self._drain_seconds <= 0:
            if self._drain_timer is not None:
                self._drain_timer.cancel()
            self._exit(sig)
            return
        self._state.draining = True
        worker = getattr(self._state, "worker", None)
        if worker is not None:
            worker.stop()
        log.info("signal %d: draining for %.1fs (readiness 503, new writes 503)", sig, self._drain_seconds)
        self._drain_timer = threading.Timer(self._drain_seconds, self._exit, (sig,))
        self._drain_timer.daemon = True
        self._drain_timer.start()

    def _exit(self, sig: int) -> None:
        # uvicorn's own handler also records the signal and re-raises it after shutdown, so
        # the process would die of it (exit 143); a completed graceful stop exits 0 instead.
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True
