"""Decoding in a sandboxed child process: the parent side (spawn, clips in, faults out).

FFmpeg parses whatever was uploaded; a decoder bug must cost one job, not the worker. So
the scan and the decode pass run in a ``spawn``-ed child (``sandbox_child``: numpy + PyAV,
no torch) with an address-space and a CPU-time limit, and the parent holds it to a
wall-clock allowance: ``timeout_seconds + timeout_per_video_second * duration`` seconds of
the parent *waiting for it* (time the child spends blocked because the parent has not
taken its clips yet is not counted, so slow inference never times a decoder out).

Faults become retryable coded errors (``app.errors.DecoderFault``), the last attempt
keeping the code:

* killed by a signal (SIGSEGV, SIGABRT, ...) or exited without a word -> ``decoder_crashed``
* over the allowance (the parent kills it)                            -> ``timeout``
* MemoryError under RLIMIT_AS, SIGXCPU (RLIMIT_CPU), SIGKILL not ours  -> ``resource_limit``

Coded media errors raised in the child (unreadable, no frames, limits) come back as the
same ``ServiceError`` they would be in process.

Clips come back through a ring of shared-memory slots (``shm.SlotRing``): the child writes
a clip's views (already scaled, normalised and cropped: float32 ``(views, 3, T, crop,
crop)``) into a free slot and sends its number; ``take`` copies it out and frees the slot.
The ring's size (``queue_bytes``) is the back-pressure: a child that is ahead blocks.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from app.analysis.limits import MediaLimits
from app.analysis.prep import FramePrep
from app.analysis.sandbox_child import FAULTS, ChildConfig
from app.analysis.shm import SlotRing
from app.errors import (
    DecoderCrashed,
    DecoderFault,
    DecoderResourceLimit,
    DecoderTimeout,
    ServiceError,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from app.analysis.decode import DecodeStats
    from app.analysis.plan import SamplingPlan
    from app.analysis.scan import VideoScan
    from app.settings import Settings

log = logging.getLogger(__name__)

MAX_SLOTS = 32
MIN_SLOTS = 2
_FAULT_CODES: dict[str, type[DecoderFault]] = {
    "decoder_crashed": DecoderCrashed,
    "resource_limit": DecoderResourceLimit,
    "timeout": DecoderTimeout,
}


@dataclass(frozen=True)
class SandboxLimits:
    memory_bytes: int | None = 4 * 1024**3
    timeout_seconds: float = 120.0
    timeout_per_video_second: float = 2.0
    queue_bytes: int = 128 * 1024**2
    fault: str | None = None
    """Test hook: make the child fail this way after its first clip (``sandbox_child.FAULTS``)."""

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f"unknown decoder fault {self.fault!r}; one of {FAULTS}")

    @classmethod
    def from_settings(cls, settings: Settings) -> SandboxLimits:
        return cls(
            memory_bytes=settings.decode_memory_bytes,
            timeout_seconds=settings.decode_timeout_seconds,
            timeout_per_video_second=settings.decode_timeout_per_video_second,
            queue_bytes=settings.decode_queue_bytes,
        )


@dataclass(frozen=True)
class SandboxClip:
    segment: int
    index: int
    times: list[float]
    views: np.ndarray
    """float32 (views, 3, T, crop, crop), owned by the caller."""


class DecodeSandbox:
    """One child for one video: ``scan()``, then ``decode(plan)``, then ``take()`` until exhausted.

    Always ``close()`` it (a context manager): a child still running is killed. The child
    also dies with the thread that created it (Linux ``PR_SET_PDEATHSIG``), so a killed
    worker leaves no decoder behind: create and use it on one long-lived thread.
    """

    def __init__(
        self,
        path: Path,
        allowed_formats: Sequence[str],
        media_limits: MediaLimits,
        prep: FramePrep,
        frames: int,
        *,
        threads: int = 0,
        limits: SandboxLimits | None = None,
    ) -> None:
        self.limits = limits or SandboxLimits()
        self.key = self.key_for(path, allowed_formats, media_limits, prep, frames, threads, self.limits)
        """What the child was started with: ``Analyzer.adopt`` matches on it."""
        self.shape = prep.clip_shape(frames)
        slot_bytes = math.prod(self.shape) * 4
        slots = slots_for(self.limits.queue_bytes, prep, frames)
        per_second = self.limits.timeout_per_video_second
        cpus = os.cpu_count() or 1
        config = ChildConfig(
            path=str(path),
            allowed_formats=tuple(allowed_formats),
            limits=media_limits,
            prep=prep,
            frames=frames,
            threads=threads,
            slots=slots,
            slot_bytes=slot_bytes,
            memory_bytes=self.limits.memory_bytes,
            cpu_seconds=cpus * self.limits.timeout_seconds + 30,
            cpu_per_video_second=cpus * per_second,
            fault=self.limits.fault,
        )
        self.allowance = self.limits.timeout_seconds
        self.waited = 0.0
        self.stats: DecodeStats | None = None
        self.exhausted = False
        self._killed = self._closed = False
        self._ring = SlotRing.create(slots, slot_bytes)
        ours, theirs = socket.socketpair()
        exit_r, exit_w = os.pipe()
        self._sentinel = exit_r
        self._conn = Connection(ours.detach())
        fds = (theirs.fileno(), self._ring.fd, exit_w)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "app.analysis.sandbox_child", *map(str, fds)],
                pass_fds=fds,
                stdin=subprocess.DEVNULL,
                env=_child_env(),
            )
        except BaseException:
            self._ring.close()
            self._conn.close()
            os.close(exit_r)
            raise
        finally:
            theirs.close()
            os.close(exit_w)
        try:
            self._conn.send(config)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def key_for(
        path: Path,
        allowed_formats: Sequence[str],
        media_limits: MediaLimits,
        prep: FramePrep,
        frames: int,
        threads: int,
        limits: SandboxLimits,
    ) -> tuple[object, ...]:
        return (str(path), tuple(allowed_formats), media_limits, prep, frames, threads, limits)

    def __enter__(self) -> DecodeSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def slots(self) -> int:
        return self._ring.slots

    def waitables(self) -> list[Any]:
        """What ``multiprocessing.connection.wait`` should watch for this child."""
        return [] if self.exhausted else [self._conn, self._sentinel]

    def scan(self) -> VideoScan:
        """Wait for the child's scan (counted against the allowance)."""
        message = self._await()
        if message[0] != "scan":
            self._handle(message)  # raises the child's coded error or fault
            raise DecoderCrashed(f"the decoder sent {message[0]!r} instead of its scan")
        scan: VideoScan = message[1]
        self.allowance += self.limits.timeout_per_video_second * scan.duration
        return scan

    def decode(self, plan: SamplingPlan, *, skip_nonref: bool = False) -> None:
        self._conn.send(("plan", plan, skip_nonref))

    def take(self) -> SandboxClip | None:
        """The next decoded clip if one is ready now (never blocks); None otherwise or at the end."""
        if self.exhausted:
            return None
        if not self._conn.poll():
            if not self._alive() and not self._conn.poll():
                self._died()
            return None
        return self._handle(self._receive())

    def next_clip(self) -> SandboxClip | None:
        """The next clip, waiting for it (counted against the allowance); None at the end."""
        while not self.exhausted:
            clip = self.take()
            if clip is not None:
                return clip
            if not self.exhausted:
                self.wait_for(self.allowance - self.waited)
        return None

    def wait_for(self, timeout: float) -> bool:
        """Block until the child has something (True) or ``timeout`` passed; charges the wait."""
        started = time.monotonic()
        ready = wait(self.waitables(), timeout=max(timeout, 0.0))
        self.charge(time.monotonic() - started)
        return bool(ready)

    def charge(self, seconds: float) -> None:
        """The parent waited ``seconds`` for this child; past the allowance it is killed."""
        self.waited += seconds
        if self.waited > self.allowance and not self.exhausted:
            self._kill()
            raise DecoderTimeout(
                f"the decoder was stopped after {self.waited:.1f} s of waiting "
                f"(its allowance for this video is {self.allowance:.1f} s)"
            )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.exhausted:
            self._join(2)
        if self._alive():
            self._proc.kill()
        self._join(5)
        self._conn.close()
        os.close(self._sentinel)
        self._ring.close()

    def _alive(self) -> bool:
        return self._proc.poll() is None

    def _join(self, timeout: float) -> None:
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    def _await(self) -> tuple[Any, ...]:
        while True:
            if self._conn.poll():
                return self._receive()
            if not self._alive() and not self._conn.poll():
                self._died()
            self.wait_for(self.allowance - self.waited)

    def _receive(self) -> tuple[Any, ...]:
        try:
            message: tuple[Any, ...] = self._conn.recv()
        except (EOFError, OSError):
            self._died()
        except Exception as exc:  # a message cut short by the child's death
            log.warning("unreadable message from the decoder: %s", exc)
            self._died()
        return message

    def _handle(self, message: tuple[Any, ...]) -> SandboxClip | None:
        kind = message[0]
        if kind == "clip":
            _, slot, segment, index, times = message
            view = self._ring.array(slot, self.shape)
            views = view.copy()
            del view
            try:
                self._conn.send(("free", slot))
            except (OSError, ValueError):  # the child finished and closed its end
                pass
            return SandboxClip(segment, index, list(times), views)
        if kind == "done":
            self.stats = message[1]
            self.exhausted = True
            return None
        self.exhausted = True
        if kind == "error" and isinstance(message[1], ServiceError):
            raise message[1]
        if kind == "fault":
            raise _FAULT_CODES.get(message[1], DecoderCrashed)(str(message[2]))
        raise DecoderCrashed(f"the decoder sent an unexpected {kind!r} message")

    def _kill(self) -> None:
        self._killed = True
        if self._alive():
            self._proc.kill()
            self._join(5)

    def _died(self) -> NoReturn:
        """The child is gone without a final message: say why, as a coded fault."""
        self.exhausted = True
        self._join(5)
        code = self._proc.returncode
        if code is None:
            self._kill()
            raise DecoderCrashed("the decoder stopped answering")
        if code < 0:
            name = _signal_name(-code)
            if -code == signal.SIGXCPU:
                raise DecoderResourceLimit(f"the decoder exceeded its CPU-time limit ({name})")
            if -code == signal.SIGKILL and not self._killed:
                raise DecoderResourceLimit(f"the decoder was killed ({name}; most likely out of memory)")
            raise DecoderCrashed(f"the decoder was killed by {name}")
        raise DecoderCrashed(f"the decoder exited with status {code} before finishing")


def _child_env() -> dict[str, str]:
    """The parent's environment, with the directory holding ``app`` first on the path."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def slots_for(queue_bytes: int, prep: FramePrep, frames: int) -> int:
    """How many clips of this geometry ``queue_bytes`` holds (between 2 and 32)."""
    slot_bytes = math.prod(prep.clip_shape(frames)) * 4
    return max(MIN_SLOTS, min(MAX_SLOTS, queue_bytes // slot_bytes))
