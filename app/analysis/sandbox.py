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

The API's upload probe runs in the same child program (``ProbeSandbox``): one child per
upload, under the same address-space limit, a CPU-time limit and a wall-clock deadline
(``probe_timeout_seconds``); its faults are the 422s ``probe_failed`` / ``probe_timeout``.
A spare child is started ahead on a thread of its own, so an upload does not wait for an
interpreter and PyAV to load (about 0.4 s).

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
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import numpy as np

from app.analysis.limits import DEFAULT_LIMITS, MediaLimits
from app.analysis.prep import FramePrep
from app.analysis.sandbox_child import FAULTS, ChildConfig, ProbeConfig, RenderConfig
from app.analysis.shm import SlotRing
from app.errors import (
    DecoderCrashed,
    DecoderFault,
    DecoderResourceLimit,
    DecoderTimeout,
    ProbeFailed,
    ProbeTimeout,
    ServiceError,
    Unavailable,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from app.analysis.decode import DecodeStats
    from app.analysis.plan import SamplingPlan
    from app.analysis.scan import VideoScan
    from app.domain import VideoInfo
    from app.settings import Settings

log = logging.getLogger(__name__)

MAX_SLOTS = 32
MIN_SLOTS = 2
RENDER_COST = 4.0
"""A render decodes and also encodes every frame: its deadline gives it this many times the
decode child's per-video-second allowance (plus the same fixed allowance)."""
RENDER_MIN_MEMORY = 2 * 1024**3
"""Floor of the render child's address space: libx264's threads reserve stacks and lookahead
buffers, and under 512 MiB thread creation already fails (EAGAIN)."""


def _check_fault(kind: str, fault: str | None) -> None:
    if fault is not None and fault not in FAULTS:
        raise ValueError(f"unknown {kind} fault {fault!r}; one of {FAULTS}")


def _cpu_seconds(wall_seconds: float, slack: float) -> float:
    """A child's CPU-time limit for a wall-clock allowance: every core busy all along, plus slack."""
    return (os.cpu_count() or 1) * wall_seconds + slack


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
    """Test hook: make the child fail this way (``sandbox_child.FAULTS``) ..."""
    fault_stage: Literal["scan", "decode"] = "decode"
    """... while scanning (before any frame time is known) or after its first decoded clip."""

    def __post_init__(self) -> None:
        _check_fault("decoder", self.fault)
        if self.fault_stage not in ("scan", "decode"):
            raise ValueError(f"unknown fault stage {self.fault_stage!r}; scan or decode")

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
            cpu_seconds=_cpu_seconds(self.limits.timeout_seconds, 30),
            cpu_per_video_second=_cpu_seconds(self.limits.timeout_per_video_second, 0),
            fault=self.limits.fault,
            fault_stage=self.limits.fault_stage,
        )
        self.allowance = self.limits.timeout_seconds
        self.waited = 0.0
        self.stats: DecodeStats | None = None
        self.exhausted = False
        self._closed = False
        self._ring = SlotRing.create(slots, slot_bytes)
        try:
            self._child = _Child(self._ring.fd)
        except BaseException:
            self._ring.close()
            raise
        self._conn, self._sentinel, self._proc = self._child.conn, self._child.sentinel, self._child.proc
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
        self._child.close(grace=2 if self.exhausted else 0)
        self._ring.close()

    def _alive(self) -> bool:
        return self._child.alive()

    def _await(self) -> tuple[Any, ...]:
        while True:
            if self._conn.poll():
                return self._receive()
            if not self._alive() and not self._conn.poll():
                self._died()
            self.wait_for(self.allowance - self.waited)

    def _receive(self) -> tuple[Any, ...]:
        try:
            return self._child.receive()
        except DecoderFault:
            self.exhausted = True
            raise

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
        _raise_final(message, self._child.role)

    def _kill(self) -> None:
        self._child.kill()

    def _died(self) -> NoReturn:
        """The child is gone without a final message: say why, as a coded fault."""
        self.exhausted = True
        raise self._child.death()


class _Child:
    """One spawned ``python -m app.analysis.sandbox_child``: its socket, a sentinel that
    becomes readable when it exits, and why it died. Shared by decode, probe and render;
    ``role`` names it in messages ("the decoder", "the probe", ...)."""

    def __init__(self, ring_fd: int | None = None, role: str = "the decoder") -> None:
        self.role = role
        ours, theirs = socket.socketpair()
        exit_r, exit_w = os.pipe()
        self.sentinel = exit_r
        self.conn = Connection(ours.detach())
        self.killed = False
        self._closed = False
        argv = (theirs.fileno(), -1 if ring_fd is None else ring_fd, exit_w)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.analysis.sandbox_child", *map(str, argv)],
                pass_fds=[fd for fd in argv if fd >= 0],
                stdin=subprocess.DEVNULL,
                env=_child_env(),
            )
        except BaseException:
            self.conn.close()
            os.close(exit_r)
            raise
        finally:
            theirs.close()
            os.close(exit_w)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def join(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    def kill(self) -> None:
        self.killed = True
        if self.alive():
            self.proc.kill()
            self.join(5)

    def close(self, grace: float = 0) -> None:
        """Give it ``grace`` seconds to exit, then kill it; release its descriptors."""
        if self._closed:
            return
        self._closed = True
        if grace:
            self.join(grace)
        if self.alive():
            self.proc.kill()
        self.join(5)
        self.conn.close()
        os.close(self.sentinel)

    def receive(self) -> tuple[Any, ...]:
        """The next message; the child gone (or a message cut short by its death) is its fault."""
        try:
            message: tuple[Any, ...] = self.conn.recv()
        except (EOFError, OSError):
            raise self.death() from None
        except Exception as exc:
            log.warning("unreadable message from %s: %s", self.role, exc)
            raise self.death() from None
        return message

    def death(self) -> DecoderFault:
        """It is gone (or mute) without a final message: why, as a coded fault."""
        self.join(5)
        code, who = self.proc.returncode, self.role
        if code is None:
            self.kill()
            return DecoderCrashed(f"{who} stopped answering")
        if code < 0:
            name = _signal_name(-code)
            if -code == signal.SIGXCPU:
                return DecoderResourceLimit(f"{who} exceeded its CPU-time limit ({name})")
            if -code == signal.SIGKILL and not self.killed:
                return DecoderResourceLimit(f"{who} was killed ({name}; most likely out of memory)")
            return DecoderCrashed(f"{who} was killed by {name}")
        return DecoderCrashed(f"{who} exited with status {code} before finishing")


def _raise_final(message: tuple[Any, ...], role: str) -> NoReturn:
    """A child's last word other than its result: its coded error, its fault, or nonsense."""
    if message[0] == "error" and isinstance(message[1], ServiceError):
        raise message[1]
    if message[0] == "fault":
        raise _FAULT_CODES.get(message[1], DecoderCrashed)(str(message[2]))
    raise DecoderCrashed(f"{role} sent an unexpected {message[0]!r} message")


@dataclass(frozen=True)
class ProbeLimits:
    memory_bytes: int | None = 4 * 1024**3
    timeout_seconds: float = 30.0
    fault: str | None = None
    """Test hook: make the probe child fail this way (``sandbox_child.FAULTS``)."""

    def __post_init__(self) -> None:
        _check_fault("probe", self.fault)

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
        self._lock = threading.Lock()
        self._spawner: ThreadPoolExecutor | None = None
        self._spare: Future[_Child] | None = None
        self._closed = False

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
            cpu_seconds=_cpu_seconds(self.limits.timeout_seconds, 5),
            fault=self.limits.fault,
        )
        deadline = self.limits.timeout_seconds
        try:
            info: VideoInfo = _one_shot(self._take(), config, deadline, "probed", self._fresh)
        except DecoderTimeout:
            raise ProbeTimeout(f"examining the upload took longer than {deadline:g} s") from None
        except DecoderFault as fault:
            raise ProbeFailed(f"the upload could not be examined: {fault.detail} ({fault.code})") from None
        return info

    def warm(self) -> None:
        """Start the spare now (at start-up), so that the first upload need not wait for it."""
        with self._lock:
            if not self._closed and self._spare is None:
                self._spare = self._spawner_locked().submit(_probe_child)

    def close(self) -> None:
        """Stop the spare (its thread ends, and so does the child); later probes are 503s."""
        with self._lock:
            self._closed = True
            spare, self._spare = self._spare, None
            spawner, self._spawner = self._spawner, None
        if spare is not None:
            try:
                spare.result().close()
            except OSError:
                pass
        if spawner is not None:
            spawner.shutdown(wait=True)

    def _take(self) -> _Child:
        with self._lock:
            if self._closed:
                raise Unavailable("the service is shutting down")
            spare, self._spare = self._spare, self._spawner_locked().submit(_probe_child)
        if spare is not None:
            try:
                child = spare.result()
            except OSError as exc:
                log.warning("could not start a spare probe process: %s", exc)
            else:
                if child.alive():
                    return child
                child.close()
        return self._fresh()

    def _spawner_locked(self) -> ThreadPoolExecutor:
        if self._spawner is None:
            self._spawner = ThreadPoolExecutor(1, thread_name_prefix="probe-spawner")
        return self._spawner

    @staticmethod
    def _fresh() -> _Child:
        """A child started by the calling thread (it waits for the child to the end)."""
        try:
            return _probe_child()
        except OSError as exc:
            raise Unavailable(f"cannot start the probe process ({exc})") from exc


def _one_shot(
    child: _Child,
    config: object,
    seconds: float,
    expected: str,
    replacement: Callable[[], _Child] | None = None,
) -> Any:
    """Give a one-shot child (probe, render) its config and wait ``seconds`` for its one answer
    ``(expected, value)``; the child is closed after. Its coded error is raised as is; a fault,
    a death or the deadline (the child is killed) as a ``DecoderFault``. ``replacement`` starts
    another child when this one (a spare) died before it could take the config."""
    try:
        try:
            child.conn.send(config)
        except OSError:  # a spare that died while it waited: not this request's doing
            if replacement is None:
                raise child.death() from None
            child.close()
            child = replacement()
            try:
                child.conn.send(config)
            except OSError:
                raise child.death() from None
        if not child.conn.poll(seconds):
            child.kill()
            raise DecoderTimeout(f"{child.role} was stopped after {seconds:g} s")
        message = child.receive()
        if message[0] == expected:
            return message[1]
        _raise_final(message, child.role)
    finally:
        child.close()


def render_in_sandbox(
    source: Path,
    target: Path,
    segments: Sequence[dict[str, Any]],
    *,
    duration: float,
    allowed_formats: Iterable[str],
    limits: MediaLimits,
    max_height: int,
    threads: int,
    sandbox: SandboxLimits,
) -> int:
    """``annotate.render`` in a spawned child under the decode child's address-space limit (at
    least ``RENDER_MIN_MEMORY``), a CPU-time limit and a wall-clock deadline (``RENDER_COST``):
    a crash, hang or blow-up while re-reading the video fails that render with its code and
    never takes the worker down; its partial file is removed. Returns the frames written."""
    allowance = sandbox.timeout_seconds + RENDER_COST * sandbox.timeout_per_video_second * max(duration, 0.0)
    part = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.part.mp4")
    config = RenderConfig(
        source=str(source),
        target=str(target),
        part=str(part),
        segments=tuple(segments),
        allowed_formats=tuple(allowed_formats),
        limits=limits,
        max_height=max_height,
        threads=threads,
        memory_bytes=max(sandbox.memory_bytes, RENDER_MIN_MEMORY) if sandbox.memory_bytes else None,
        cpu_seconds=_cpu_seconds(allowance, 5),
        fault=sandbox.fault,
    )
    try:
        frames: int = _one_shot(_Child(role="the renderer"), config, allowance, "rendered")
    finally:
        part.unlink(missing_ok=True)  # left behind by a child that was killed mid-encode
    return frames


def _probe_child() -> _Child:
    return _Child(role="the probe")


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
