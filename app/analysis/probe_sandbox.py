"""The API's upload probe in a sandboxed child: ``probe.probe_video`` without PyAV in the API.

One child per upload (``sandbox_child``, started by ``sandbox_process``), under the decode
child's address-space limit, a CPU-time limit and a wall-clock deadline
(``probe_timeout_seconds``); its faults are the 422s ``probe_failed`` / ``probe_timeout``.
A spare child is started ahead on a thread of its own, so an upload does not wait for an
interpreter and PyAV to load (about 0.4 s). The API process imports this module: it must
stay free of numpy, torch and av.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.analysis.limits import DEFAULT_LIMITS, MediaLimits
from app.analysis.sandbox_process import SandboxChild, cpu_seconds, one_shot
from app.analysis.sandbox_protocol import ProbeConfig, check_fault
from app.analysis.sandbox_spares import SpareChildren
from app.errors import DecoderFault, DecoderTimeout, ProbeFailed, ProbeTimeout, Unavailable

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from app.domain import VideoInfo
    from app.settings import Settings


@dataclass(frozen=True)
class ProbeLimits:
    memory_bytes: int | None = 4 * 1024**3
    timeout_seconds: float = 30.0
    fault: str | None = None
    """Test hook: make the probe child fail this way (``sandbox_child.FAULTS``)."""

    def __post_init__(self) -> None:
        check_fault("probe", self.fault)

    @classmethod
    def from_settings(cls, settings: Settings) -> ProbeLimits:
        return cls(memory_bytes=settings.decode_memory_bytes, timeout_seconds=settings.probe_timeout_seconds)


class ProbeSandbox:
    """``probe.probe_video`` in a sandboxed child: a drop-in for the API's upload probe.

    Each upload gets a fresh child (one that parsed a hostile file is never reused), under
    an address-space limit, a CPU-time limit and a wall-clock deadline. A crash, a limit
    or the deadline is ``ProbeFailed`` / ``ProbeTimeout`` (422) and costs only that request.

    One spare child is kept started: it loads Python and PyAV while no upload waits for
    it. Spares are started on a thread of their own, which lives until ``close()`` (or
    until this object is garbage-collected), because a child dies with the thread that
    started it (``PR_SET_PDEATHSIG``): so the spare ends with it. Each upload takes the spare
    (waiting for it if it is still starting) and orders the next one; only when there is no
    usable spare (it failed to start or died) does the request's thread start a child itself."""

    def __init__(self, limits: ProbeLimits | None = None) -> None:
        self.limits = limits or ProbeLimits()
        self._spares = SpareChildren(1, _probe_child, role="probe")

    def probe_video(
        self,
        path: Path,
        *,
        filename: str,
        allowed_formats: Iterable[str],
        limits: MediaLimits = DEFAULT_LIMITS,
    ) -> VideoInfo:
        """Same arguments, result and coded media errors as ``probe.probe_video``."""
        config = ProbeConfig(
            path=str(path),
            filename=filename,
            allowed_formats=tuple(allowed_formats),
            limits=limits,
            memory_bytes=self.limits.memory_bytes,
            cpu_seconds=cpu_seconds(self.limits.timeout_seconds, 5),
            fault=self.limits.fault,
        )
        deadline = self.limits.timeout_seconds
        try:
            info: VideoInfo = one_shot(self._take(), config, deadline, "probed", self._fresh)
        except DecoderTimeout:
            raise ProbeTimeout(f"examining the upload took longer than {deadline:g} s") from None
        except DecoderFault as fault:
            raise ProbeFailed(f"the upload could not be examined: {fault.detail} ({fault.code})") from None
        return info

    def warm(self) -> None:
        """Start the spare now (at start-up), so that the first upload need not wait for it."""
        self._spares.refill()

    def close(self) -> None:
        """Stop the spare (its thread ends, and so does the child); later probes are 503s."""
        self._spares.close()

    def _take(self) -> SandboxChild:
        if self._spares.closed:
            raise Unavailable("the service is shutting down")
        child = self._spares.take()
        self._spares.refill()  # the next upload's
        return child if child is not None else self._fresh()

    @staticmethod
    def _fresh() -> SandboxChild:
        """A child started by the calling thread (it waits for the child to the end)."""
        try:
            return _probe_child()
        except OSError as exc:
            raise Unavailable(f"cannot start the probe process ({exc})") from exc


def _probe_child() -> SandboxChild:
    return SandboxChild(role="the probe")
