"""One sequential PyAV pass that turns the plan's frames into clips, in time order.

Only frames the plan needs are converted (RGB uint8, rotated upright, then ``prepare``
shrinks them), and each is dropped as soon as every clip using it has been yielded, so
memory stays bounded by the clips in flight, not by the video's length.

Decoded frames are matched to the plan by pts. A planned frame that never decodes
(corrupt packet, open GOP at the start) is replaced by the nearest decoded frame, and
the clip reports the times actually used.

A packet whose frame the plan does not need is decoded with ``skip_frame = NONREF``: if
no other frame references it (most B-frames), the decoder skips it; if it is a
reference, it is decoded as always. Skipping frames nothing depends on cannot change
any other frame, so the clips are the same, for about a third less decoding work on
H.264 with B-frames. (The optional fast mode skips every non-reference frame instead.)
Only where the packet's pts is its frame's (``VideoScan.packet_times``; not in AVI,
whose packed B-frames made the skip drop sampled frames).

A pass may start at a keyframe (``start_pts``) instead of the beginning: the part of the
plan a second decode child takes (``decode_split``). Decoding from a random-access point
gives the frames after it exactly as a pass from the beginning does; a container that
cannot seek there (it lands past the keyframe) is read from the beginning instead.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, Generic, TypeVar

import av
import numpy as np

from app.analysis.limits import DEFAULT_LIMITS, MediaLimits, check_decode_error, check_frame
from app.analysis.plan import ClipPlan, SamplingPlan
from app.analysis.scan import VideoScan, open_video, pts_to_seconds
from app.errors import NoFrames, VideoUnreadable

log = logging.getLogger(__name__)
F = TypeVar("F")


@dataclass(frozen=True)
class DecodedClip(Generic[F]):
    plan: ClipPlan
    frames: list[F]
    times: list[float]


@dataclass
class DecodeStats:
    decoded: int = 0
    converted: int = 0
    substituted: int = 0
    errors: int = 0
    rotation: int | None = None
    sizes: set[tuple[int, int]] = field(default_factory=set)

    @classmethod
    def merged(cls, parts: Sequence[DecodeStats]) -> DecodeStats:
        """The statistics of one video decoded in parts (in plan order) by several passes."""
        rotations = [p.rotation for p in parts if p.rotation is not None]
        return cls(
            decoded=sum(p.decoded for p in parts),
            converted=sum(p.converted for p in parts),
            substituted=sum(p.substituted for p in parts),
            errors=sum(p.errors for p in parts),
            rotation=rotations[0] if rotations else None,
            sizes=set().union(*(p.sizes for p in parts)),
        )


def frame_to_rgb(frame: Any) -> np.ndarray:
    """RGB uint8 (H, W, 3), turned upright with the display matrix (counter-clockwise degrees)."""
    rgb: np.ndarray = frame.to_ndarray(format="rgb24")
    quarter_turns = round(float(getattr(frame, "rotation", 0) or 0) / 90) % 4
    if quarter_turns:
        rgb = np.ascontiguousarray(np.rot90(rgb, k=quarter_turns))
    return rgb


@dataclass
class _Seen:
    frame: Any
    time: float
    prepared: Any = None


class _Assembler(Generic[F]):
    """Bookkeeping of one pass: which planned frame each decoded frame fills, when a clip is done.

    Some decoders emit frames slightly out of presentation order (packed B-frames in AVI),
    so a planned index only counts as missing once frames ``REORDER`` indices later arrived.
    """

    REORDER = 8

    def __init__(
        self,
        scan: VideoScan,
        plan: SamplingPlan,
        prepare: Callable[[np.ndarray], F],
        limits: MediaLimits = DEFAULT_LIMITS,
    ) -> None:
        self.scan, self.plan, self.prepare, self.limits = scan, plan, prepare, limits
        self.stats = DecodeStats()
        self.by_pts: dict[int, deque[int]] = defaultdict(deque)
        for index, pts in enumerate(scan.frame_pts):
            if pts is not None:
                self.by_pts[pts].append(index)
        self.needed = sorted(plan.needed_frames)
        self.needed_set = plan.needed_frames
        self.next_needed = 0
        self.uses = Counter(i for clip in plan.clips for i in set(clip.frames))
        self.pending = sorted(plan.clips, key=lambda c: (max(c.frames), c.segment, c.index))
        self.next_clip = 0
        self.store: dict[int, tuple[F, float]] = {}
        self.settled = 0
        self.high = -1
        self.recent: deque[_Seen] = deque(maxlen=self.REORDER + 2)

    @property
    def done(self) -> bool:
        return self.next_clip >= len(self.pending)

    @property
    def decoded_any(self) -> bool:
        return bool(self.recent)

    def wanted(self, pts: int | None) -> bool:
        """Whether the frame with this pts is planned (a frame the scan did not list is)."""
        indices = self.by_pts.get(pts) if pts is not None else None
        return not indices or any(i in self.needed_set for i in indices)

    def _locate(self, pts: int | None) -> tuple[int | None, float]:
        """(planned index or None, presentation time) of a decoded frame."""
        times, n = self.scan.frame_times, len(self.scan.frame_times)
        if pts is None or not self.by_pts:
            index = self.high + 1 if self.high + 1 < n else None
            return index, times[min(self.high + 1, n - 1)]
        time = pts_to_seconds(pts, self.scan.start_pts, self.scan.time_base)
        if self.by_pts.get(pts):
            return self.by_pts[pts].popleft(), time
        pos = bisect_left(times, time, lo=self.settled)
        near = [i for i in (pos - 1, pos) if self.settled <= i < n]
        best = min(near, key=lambda i: abs(times[i] - time), default=None)
        return (best if best is not None and abs(times[best] - time) < 1e-3 else None), time

    def _prepared(self, seen: _Seen) -> F:
        if seen.prepared is None:
            try:
                rgb = frame_to_rgb(seen.frame)
            except (ValueError, av.FFmpegError) as exc:
                raise VideoUnreadable(
                    f"frames of format {seen.frame.format.name} cannot be converted: {exc}"
                ) from exc
            seen.prepared = self.prepare(rgb)
            self.stats.converted += 1
        prepared: F = seen.prepared
        return prepared

    def _settle(self, upto: int) -> None:
        """Planned frames before ``upto`` that never decoded: use the nearest recent frame."""
        while self.next_needed < len(self.needed) and self.needed[self.next_needed] < upto:
            index = self.needed[self.next_needed]
            self.next_needed += 1
            if index in self.store:
                continue
            target = self.scan.frame_times[index]
            best = min(self.recent, key=lambda s: abs(s.time - target))
            self.store[index] = (self._prepared(best), best.time)
            self.stats.substituted += 1
        self.settled = max(self.settled, upto)

    def add(self, frame: Any) -> list[DecodedClip[F]]:
        self.stats.decoded += 1
        if self.stats.rotation is None:
            self.stats.rotation = round(float(getattr(frame, "rotation", 0) or 0)) % 360
        index, time = self._locate(None if frame.pts is None else int(frame.pts))
        check_frame(frame, time, self.limits)
        seen = _Seen(frame, time)
        self.recent.append(seen)
        if index is not None and index >= self.settled:
            self.stats.sizes.add((frame.width, frame.height))
            if index in self.needed_set and index not in self.store:
                self.store[index] = (self._prepared(seen), time)
            self.high = max(self.high, index)
            self._settle(self.high + 1 - self.REORDER)
        return self._ready()

    def finish(self) -> list[DecodedClip[F]]:
        if self.recent:
            self._settle(len(self.scan.frame_times))
        return self._ready()

    def _ready(self) -> list[DecodedClip[F]]:
        out = []
        while not self.done and max(self.pending[self.next_clip].frames) < self.settled:
            clip = self.pending[self.next_clip]
            self.next_clip += 1
            out.append(
                DecodedClip(
                    clip, [self.store[i][0] for i in clip.frames], [self.store[i][1] for i in clip.frames]
                )
            )
            for i in set(clip.frames):
                self.uses[i] -= 1
                if self.uses[i] == 0:
                    del self.store[i]
        return out


def _open_at(
    stack: ExitStack,
    path: Path,
    allowed_formats: Iterable[str],
    limits: MediaLimits,
    threads: int,
    start_pts: int | None,
) -> tuple[Any, Iterator[Any]]:
    """(video stream, its packets) from the keyframe at ``start_pts`` (None: the beginning).

    Before seeking, the decoder decodes the stream's first packet: decoders learn
    stream-wide facts there that change how later frames decode (FFmpeg's workarounds for
    old x264 4:4:4 encodes, keyed on the version in x264's first SEI; Xvid/DivX builds from
    their user data), and the seek's flush keeps them. A seek that fails or lands past that
    keyframe reads from the beginning."""
    formats = list(allowed_formats)
    container = stack.enter_context(open_video(path, formats, limits))
    stream = container.streams.video[0]
    stream.codec_context.thread_type = "AUTO"
    stream.codec_context.thread_count = threads
    packets = container.demux(stream)
    if start_pts is None:
        return stream, packets
    first = None
    try:
        _prime(next(packets, None))
        container.seek(start_pts, stream=stream, backward=True, any_frame=False)
        packets = container.demux(stream)
        first = next(packets, None)
    except MemoryError:
        raise
    except (av.FFmpegError, ValueError) as exc:
        log.info("seeking to pts %s failed in %s: %s", start_pts, path.name, exc)
    if first is not None and first.pts is not None and first.pts <= start_pts and first.is_keyframe:
        return stream, chain([first], packets)
    log.info("could not start at pts %s in %s; reading it from the beginning", start_pts, path.name)
    container.close()
    return _open_at(stack, path, formats, limits, threads, None)


def _prime(packet: Any) -> None:
    """Decode ``packet`` for what the decoder learns from it; its frames and errors do not matter."""
    if packet is None:
        return
    try:
        packet.decode()
    except MemoryError:
        raise
    except (av.FFmpegError, ValueError):
        pass


def decode_clips(
    path: Path,
    allowed_formats: Iterable[str],
    scan: VideoScan,
    plan: SamplingPlan,
    prepare: Callable[[np.ndarray], F],
    *,
    threads: int = 0,
    stats: DecodeStats | None = None,
    limits: MediaLimits = DEFAULT_LIMITS,
    skip_nonref: bool = False,
    start_pts: int | None = None,
    on_frame: Callable[[Any], None] | None = None,
) -> Generator[DecodedClip[F], None, None]:
    """Yield every clip of ``plan`` once all its frames are decoded; stops after the last one.
    Each decoded frame is held to the media limits (size, time), as the upload probe was.

    ``skip_nonref`` (fast mode): the decoder drops non-reference frames (most B-frames), and
    a planned frame that is never decoded is replaced by the nearest decoded one. An
    allocation failure (``MemoryError``, also FFmpeg's ENOMEM) or a frame refused by the
    size cap (``FrameTooLarge``) is never taken for a bad packet. ``start_pts``: a keyframe
    of the scan at or before every frame of ``plan`` to start decoding at. ``on_frame``
    (shot detection) gets every decoded frame, to the end of the stream: nothing is skipped."""
    state = _Assembler(scan, plan, prepare, limits)
    if stats is not None:
        state.stats = stats
    with ExitStack() as stack:
        stream, packets = _open_at(stack, path, allowed_formats, limits, threads, start_pts)
        ctx = stream.codec_context
        # Fast mode: NONREF for every packet. Exact mode: NONREF only for packets the plan
        # does not need (toggled as the demuxer goes; a reference frame is decoded anyway),
        # where a packet's pts tells which frame it carries (not in AVI: ``scan``).
        every = on_frame is not None
        exact = not skip_nonref and scan.packet_times and not every
        skipping = skip_nonref and not every
        if skipping:
            ctx.skip_frame = "NONREF"
        while every or not state.done:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except MemoryError:
                raise
            except (av.FFmpegError, ValueError) as exc:
                state.stats.errors += 1
                log.warning("demux stopped early in %s: %s", path.name, exc)
                break
            if exact and state.wanted(packet.pts) == skipping:
                skipping = not skipping
                ctx.skip_frame = "NONREF" if skipping else "DEFAULT"
            try:
                frames = packet.decode()
            except MemoryError:
                raise
            except (av.FFmpegError, ValueError) as exc:
                check_decode_error(ctx, exc, limits)  # a frame over the size cap is no bad packet
                state.stats.errors += 1
                log.debug("skipping undecodable packet in %s: %s", path.name, exc)
                continue
            for frame in frames:
                if on_frame is not None:
                    on_frame(frame)
                if not state.done:
                    yield from state.add(frame)
        if state.done:
            return
        if not state.decoded_any:
            if state.stats.errors:
                raise VideoUnreadable(f"no frame of the video could be decoded ({state.stats.errors} errors)")
            raise NoFrames("the video stream produced no frames")
        yield from state.finish()
