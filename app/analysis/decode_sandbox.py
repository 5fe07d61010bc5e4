"""Decoding in a sandboxed child process: the parent side (spawn, clips in, faults out).

FFmpeg parses whatever was uploaded; a decoder bug must cost one job, not the worker. So
the scan and the decode pass run in a ``spawn``-ed child (``sandbox_child``: numpy + PyAV,
no torch) with an address-space and a CPU-time limit, and the parent holds it to a
wall-clock allowance: ``timeout_seconds + timeout_per_video_second * duration`` seconds of
the parent *waiting for it* (time the child spends blocked because the parent has not
taken its clips yet is not counted, so slow inference never times a decoder out). How a
child's death becomes a coded fault is ``sandbox_process``'s.

Clips come back through a ring of shared-memory slots (``shm.SlotRing``): the child writes
a clip's views (already scaled, normalised and cropped: float32 ``(views, 3, T, crop,
crop)``) into a free slot and sends its number; ``take`` copies it out and frees the slot.
The ring's size (``queue_bytes``) is the back-pressure: a child that is ahead blocks.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.reduction import send_handle
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import numpy as np

from app.analysis.limits import MediaLimits
from app.analysis.prep import FramePrep
from app.analysis.sandbox_process import SandboxChild, cpu_seconds, raise_final
from app.analysis.sandbox_protocol import ChildConfig, check_fault
from app.analysis.shm import SlotRing
from app.errors import DecoderCrashed, DecoderFault, DecoderTimeout, ServiceError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from app.analysis.decode import DecodeStats
    from app.analysis.grid_store import ShotClip
    from app.analysis.plan import SamplingPlan
    from app.analysis.scan import VideoScan
    from app.analysis.shot_frames import FramesSink
    from app.settings import Settings

MAX_SLOTS = 32
MIN_SLOTS = 2


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
        check_fault("decoder", self.fault)
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
    Given the ``scan`` (a further child of a split decode, ``decode_split``), the child does
    not scan, and ``decode(part, start_pts=...)`` starts it at a keyframe.

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
        scan: VideoScan | None = None,
        spare: SandboxChild | None = None,
    ) -> None:
        """``spare``: a child started ahead (``sandbox_spares``); it gets the ring over the socket."""
        self.limits = limits or SandboxLimits()
        self.key = self.key_for(path, allowed_formats, media_limits, prep, frames, threads, self.limits)
        """What the child was started with: ``Analyzer.adopt`` matches on it."""
        self.prep, self.frames = prep, frames
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
            cpu_seconds=cpu_seconds(self.limits.timeout_seconds, 30),
            cpu_per_video_second=cpu_seconds(self.limits.timeout_per_video_second, 0),
            fault=self.limits.fault,
            fault_stage=self.limits.fault_stage,
            scan=scan,
        )
        self._scan = scan
        self._scan_error: ServiceError | None = None
        self.allowance = self.limits.timeout_seconds
        if scan is not None:
            self.allowance += self.limits.timeout_per_video_second * scan.duration
        self.waited = 0.0
        self.stats: DecodeStats | None = None
        self.exhausted = False
        self._closed = False
        self._on_frames: FramesSink | None = None
        self._on_decoded: Callable[[], None] | None = None
        self._ring = SlotRing.create(slots, slot_bytes)
        try:
            self._child = self._started(config, spare)
        except BaseException:
            self._ring.close()
            raise
        self._conn, self._sentinel, self._proc = self._child.conn, self._child.sentinel, self._child.proc

    def _started(self, config: ChildConfig, spare: SandboxChild | None) -> SandboxChild:
        """The child, told its config: the spare (handed the ring's descriptor after the
        config), or a new child that inherits the ring (also when the spare died waiting)."""
        if spare is not None:
            try:
                spare.conn.send(config)
                send_handle(spare.conn, self._ring.fd, spare.proc.pid)
                return spare
            except OSError:
                spare.close()
        child = SandboxChild(self._ring.fd)
        try:
            child.conn.send(config)
        except BaseException:
            child.close()
            raise
        return child

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
        """Wait for the child's scan (counted against the allowance); the given one if any.
        Asked again, the same scan (or the same error): the CLI's early start asks first."""
        if self._scan is not None:
            return self._scan
        if self._scan_error is not None:
            raise self._scan_error
        try:
            message = self._await()
            if message[0] != "scan":
                self._handle(message)  # raises the child's coded error or fault
                raise DecoderCrashed(f"the decoder sent {message[0]!r} instead of its scan")
        except ServiceError as exc:
            self._scan_error = exc
            raise
        scan: VideoScan = message[1]
        self.allowance += self.limits.timeout_per_video_second * scan.duration
        self._scan = scan
        return scan

    def decode(
        self,
        plan: SamplingPlan,
        *,
        skip_nonref: bool = False,
        start_pts: int | None = None,
        on_frames: FramesSink | None = None,
    ) -> None:
        """Decode ``plan`` (from the keyframe at ``start_pts``, else from the beginning).
        ``on_frames``: every frame of the video, at 48x27 (``shot_frames``), reaches it as
        ``take`` reads them (the child decodes to the end, skipping nothing)."""
        self._on_frames = on_frames
        self._conn.send(("plan", plan, skip_nonref and on_frames is None, start_pts, on_frames is not None))

    def decode_shots(
        self, grid: SamplingPlan, memory_bytes: int, on_frames: FramesSink, on_decoded: Callable[[], None]
    ) -> None:
        """``segmentation=shots`` (``shot_child``): every frame to ``on_frames``, the ``grid``
        frames kept (``memory_bytes`` in memory, the rest on disk); ``on_decoded`` once the last
        frame went out. Then ``send_shot`` each final shot's clips, and ``end_shots``."""
        self._on_frames, self._on_decoded = on_frames, on_decoded
        self._conn.send(("shots", grid, memory_bytes))

    def send_shot(self, clips: Sequence[ShotClip], keep_from: int) -> None:
        self._conn.send(("shot", tuple(clips), keep_from))

    def end_shots(self) -> None:
        self._conn.send(("end",))

    def take(self) -> SandboxClip | None:
        """The next decoded clip if one is ready now (never blocks); None otherwise or at the end."""
        if self.exhausted:
            return None
        while self._conn.poll():
            message = self._receive()
            if message[0] == "decoded" and self._on_decoded is not None:
                self._on_decoded()
                continue
            if message[0] != "frames" or self._on_frames is None:
                return self._handle(message)
            self._on_frames(message[1], list(message[2]))
        if not self._alive() and not self._conn.poll():
            self._died()
        return None

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
        raise_final(message, self._child.role)

    def _kill(self) -> None:
        self._child.kill()

    def _died(self) -> NoReturn:
        """The child is gone without a final message: say why, as a coded fault."""
        self.exhausted = True
        raise self._child.death()


def slots_for(queue_bytes: int, prep: FramePrep, frames: int) -> int:
    """How many clips of this geometry ``queue_bytes`` holds (between 2 and 32)."""
    slot_bytes = math.prod(prep.clip_shape(frames)) * 4
    return max(MIN_SLOTS, min(MAX_SLOTS, queue_bytes // slot_bytes))
