"""The sampling plan: which frames (by presentation time) feed which clip of which segment.

Pure arithmetic, no torch or av, so it is cheap to test exhaustively. Frames are chosen
exactly as PyTorchVideo does at test time: every frame with ``start <= t < end`` in the
clip window (``EncodedVideoPyAV.get_clip``), reduced to T frames by
``UniformTemporalSubsample`` (``linspace(0, n-1, T)`` in float32, truncated).

Windows, segment bounds and frame times are exact rationals (``exact_time``): a window
``[t0, t0 + T*tau/30)`` holds exactly the frames whose timestamps fall in it, which is what
``get_clip`` returns when given the same window as ``Fraction`` seconds. (Given float
seconds, PyTorchVideo rounds the end up to the next tick, so ``3.8000000000000003`` takes
the frame at 3.8 s; ``docs/MODELS.md``, "Clip windows".)
"""

from __future__ import annotations

import sys
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property, lru_cache
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np

from app.analysis.exact_time import Seconds, as_fraction, exact_times, scan_timeline
from app.analysis.segmenting import MAX_SEGMENTS, job_bounds, segment_bounds, segment_lengths
from app.analysis.spec import SOURCE_FPS, ModelSpec
from app.errors import NoFrames
from app.options import DETECTION_OPTIONS, JobOptions, Segmentation

if TYPE_CHECKING:
    from app.analysis.scan import VideoScan


WITHOUT_TORCH: ContextVar[bool] = ContextVar("plan_without_torch", default=False)
"""Set (in its own thread) by the CLI's early decode, which plans before torch is imported:
the emulation then, even where it might differ, and the engine's own plan is compared with it."""

_LEARNED: dict[int, tuple[int, dict[int, tuple[int, ...]]]] = {}
"""Per T: windows up to a length whose torch answers on this CPU are known, and those of them
where torch differs from the emulation (``learn_torch_answers``; ``frame_choice``)."""

_SAFE_ULPS = 64
"""How far (in float32 units in the last place) from an integer every emulated value must be
for any linspace kernel to truncate it the same way: they differ by a few ulps at most."""


def uniform_subsample_indices(n: int, t: int) -> list[int]:
    """``torch.linspace(0, n-1, t).clamp(0, n-1).long()``: PyTorchVideo's own frame choice.

    torch's CPU linspace kernel is vectorised, and its rounding depends on the SIMD width
    of the machine (values landing within float32 epsilon of an integer truncate either
    way), so no portable formula reproduces it bit for bit. Where torch is loaded it is asked;
    else the numpy emulation answers when it is provably the same (every value exact or far
    from an integer, ``emulation_is_exact``) or the window's answer on this CPU is known from
    an export's report (``learn_torch_answers``), so a job run on an OpenVINO export needs no
    torch for its plan; torch is imported only where neither holds.
    """
    if n < 1 or t < 1:
        raise ValueError("need n >= 1 and t >= 1")
    if WITHOUT_TORCH.get():
        return _learned(n, t) or emulated_subsample_indices(n, t)
    if "torch" not in sys.modules:
        if emulation_is_exact(n, t):
            return emulated_subsample_indices(n, t)
        learned = _learned(n, t)
        if learned is not None:
            return learned
    try:
        import torch
    except ImportError:  # pragma: no cover - every worker has torch
        return emulated_subsample_indices(n, t)
    return [int(i) for i in torch.linspace(0, n - 1, t).clamp(0, n - 1).long().tolist()]


def learn_torch_answers(t: int, up_to: int, differs: Mapping[int, Sequence[int]]) -> None:
    """torch's answers on this CPU for T = ``t``: for every window of up to ``up_to`` frames,
    the emulation's, except ``differs``'s (recorded by an export: ``frame_choice``)."""
    _LEARNED[t] = (up_to, {n: tuple(v) for n, v in differs.items()})


def forget_torch_answers() -> None:
    _LEARNED.clear()


def _learned(n: int, t: int) -> list[int] | None:
    entry = _LEARNED.get(t)
    if entry is None or n > entry[0]:
        return None
    answer = entry[1].get(n)
    return list(answer) if answer is not None else emulated_subsample_indices(n, t)


def _emulated_values(n: int, t: int) -> np.ndarray:
    """torch's scalar linspace formula in float32 (first half ``start + step*i``, second half
    ``end - step*(t-1-i)``), clamped to ``[0, n-1]``."""
    start, end = np.float32(0), np.float32(n - 1)
    if t == 1:
        return np.zeros(1, dtype=np.float32)
    step = np.float32(end - start) / np.float32(t - 1)
    i = np.arange(t, dtype=np.float32)
    lower = start + step * i
    upper = end - step * (np.float32(t - 1) - i)
    values = np.where(np.arange(t) < t // 2, lower, upper).astype(np.float32)
    return np.clip(values, start, end)


def emulated_subsample_indices(n: int, t: int) -> list[int]:
    """The emulation's indices; equal to torch except where SIMD rounding differs by one frame."""
    return [int(v) for v in _emulated_values(n, t).astype(np.int64)]


@lru_cache(maxsize=4096)
def emulation_is_exact(n: int, t: int) -> bool:
    """Whether every linspace kernel gives the emulation's indices: the step is a whole number
    (every value an exact small integer in float32), or no value lies within ``_SAFE_ULPS``
    of an integer, where a few ulps of other rounding could truncate it the other way.
    Cached: every clip of a plan, and every SlowFast view, asks for the same few windows."""
    if t == 1 or ((n - 1) % (t - 1) == 0 and n < 2**24):
        return True
    values = _emulated_values(n, t).astype(np.float64)
    interior = values[1:-1]  # the ends are exactly 0 and n - 1 in every kernel
    margin = _SAFE_ULPS * np.spacing(np.float32(max(n, 1))).astype(np.float64)
    distance = np.abs(interior - np.round(interior))
    return bool(np.all(distance > margin))


@dataclass(frozen=True)
class ClipPlan:
    segment: int
    index: int
    window_start: Fraction
    window_end: Fraction
    """The window ``[window_start, window_end)`` in exact seconds from the stream's start."""
    frames: tuple[int, ...]
    """Indices into the plan's ``frame_times``; exactly T, non-decreasing."""


@dataclass(frozen=True)
class SegmentPlan:
    index: int
    start: float
    end: float
    clips: tuple[ClipPlan, ...]
    first_frame_time: float
    last_frame_time: float


@dataclass(frozen=True)
class SamplingPlan:
    frame_times: tuple[float, ...]
    duration: float
    segments: tuple[SegmentPlan, ...]

    @property
    def clips(self) -> list[ClipPlan]:
        return [clip for segment in self.segments for clip in segment.clips]

    @cached_property
    def needed_frames(self) -> frozenset[int]:
        """The only frames the decoder has to convert."""
        return frozenset(i for clip in self.clips for i in clip.frames)


def model_clip_seconds(spec: ModelSpec) -> Fraction:
    """``spec.clip_seconds`` exactly: T frames every tau frames at 30 fps, ``T*tau/30``."""
    return Fraction(spec.frames * spec.sampling_rate) / as_fraction(SOURCE_FPS)


def clip_window(center: Seconds, clip_seconds: Seconds, duration: Seconds) -> tuple[Fraction, Fraction]:
    """The native window centred on ``center``, shifted to lie inside ``[0, duration]``, exact."""
    middle, length, total = as_fraction(center), as_fraction(clip_seconds), as_fraction(duration)
    if length >= total:
        return Fraction(0), total
    begin = min(max(middle - length / 2, Fraction(0)), total - length)
    return begin, begin + length


def select_frames(
    times: Sequence[Fraction], window_start: Fraction, window_end: Fraction, t: int
) -> tuple[int, ...]:
    """T frame indices for one window; the frame nearest the centre when the window is empty."""
    lo, hi = bisect_left(times, window_start), bisect_left(times, window_end)
    if hi > lo:
        return tuple(lo + k for k in uniform_subsample_indices(hi - lo, t))
    center = (window_start + window_end) / 2
    pos = bisect_left(times, center)
    candidates = [i for i in (pos - 1, pos) if 0 <= i < len(times)]
    nearest = min(candidates, key=lambda i: (abs(times[i] - center), i))
    return (nearest,) * t


def make_plan(
    frame_times: Sequence[Seconds],
    duration: Seconds,
    *,
    frames: int,
    clip_seconds: Seconds,
    segment_seconds: Seconds,
    stride_seconds: Seconds,
    clips_per_segment: int = 1,
    start: Seconds = 0.0,
    end: Seconds | None = None,
    max_segments: int = MAX_SEGMENTS,
) -> SamplingPlan:
    """Cut ``[start, end)`` into segments (at most ``max_segments``, else InvalidOptions) and
    give each ``clips_per_segment`` clips of T frames. Floats are read with ``as_fraction``."""
    return plan_segments(
        frame_times,
        duration,
        lambda total: segment_bounds(
            total,
            start=start,
            end=end,
            segment_seconds=segment_seconds,
            stride_seconds=stride_seconds,
            limit=max_segments,
        ),
        frames=frames,
        clip_seconds=clip_seconds,
        clips_per_segment=clips_per_segment,
    )


Bounds = list[tuple[Fraction, Fraction]]


def plan_segments(
    frame_times: Sequence[Seconds],
    duration: Seconds,
    bounds: Callable[[Fraction], Bounds],
    *,
    frames: int,
    clip_seconds: Seconds,
    clips_per_segment: int = 1,
) -> SamplingPlan:
    """One segment per ``bounds(duration)`` entry, in that order (index = position), whatever
    the source of the bounds; each gets ``clips_per_segment`` native windows centred at
    ``start + (2k+1)/(2n)`` of its length (shifted inside the video), of T frames each."""
    times = exact_times(frame_times)
    if not times:
        raise NoFrames("the video stream has no frames")
    if any(b < a for a, b in pairwise(times)):
        raise ValueError("frame_times must be sorted")
    total, length_of_clip = as_fraction(duration), as_fraction(clip_seconds)
    segments = []
    for index, (seg_start, seg_end) in enumerate(bounds(total)):
        length = seg_end - seg_start
        clips = []
        for k in range(clips_per_segment):
            center = seg_start + (2 * k + 1) * length / (2 * clips_per_segment)
            w_start, w_end = clip_window(center, length_of_clip, total)
            chosen = select_frames(times, w_start, w_end, frames)
            clips.append(ClipPlan(index, k, w_start, w_end, chosen))
        used = [times[i] for clip in clips for i in clip.frames]
        segments.append(
            SegmentPlan(
                index, float(seg_start), float(seg_end), tuple(clips), float(min(used)), float(max(used))
            )
        )
    return SamplingPlan(tuple(float(t) for t in times), float(total), tuple(segments))


def effective_options(spec: ModelSpec, options: JobOptions, duration: float) -> dict[str, Any]:
    """The options actually used: the model's default segment, stride = segment, ``end``
    clamped. With chosen ranges: no segment or stride, and ``start``/``end`` the span the
    ranges cover (what the job's time budget counts). With shots: shot detection on, and
    ``clips_per_segment`` left unset when it was (each segment's own default)."""
    data = options.model_dump()
    if spec.task != "detection":
        for name in DETECTION_OPTIONS:
            data.pop(name, None)
    data["segmentation"] = options.segmentation.value
    if options.segmentation is Segmentation.SHOTS:  # the shots are the segments (``shot_plan``)
        data["detect_shots"] = True
        data["end"] = min(options.end, duration) if options.end is not None else duration
        return data
    data["clips_per_segment"] = options.clips_per_segment or 1
    if options.segments is not None:
        data["segments"] = [list(pair) for pair in options.segments]
        data["start"] = min(begin for begin, _ in options.segments)
        data["end"] = min(max(stop for _, stop in options.segments), duration)
        return data
    data["segment_seconds"], data["stride_seconds"] = segment_lengths(spec, options)
    data["end"] = min(options.end, duration) if options.end is not None else duration
    return data


def plan_for(
    spec: ModelSpec,
    options: JobOptions,
    frame_times: Sequence[Seconds],
    duration: Seconds,
    *,
    max_segments: int = MAX_SEGMENTS,
) -> SamplingPlan:
    """The plan for one job: the spec's clip over the job's segments (``job_bounds``)."""
    return plan_segments(
        frame_times,
        duration,
        lambda total: job_bounds(spec, options, total, limit=max_segments),
        frames=spec.frames,
        clip_seconds=model_clip_seconds(spec),
        clips_per_segment=options.clips_per_segment or 1,
    )


def plan_for_scan(
    spec: ModelSpec, options: JobOptions, scan: VideoScan, *, max_segments: int = MAX_SEGMENTS
) -> SamplingPlan:
    """``plan_for`` on the scan's exact timeline (integer pts and time base, not float seconds)."""
    times, duration = scan_timeline(scan)
    return plan_for(spec, options, times, duration, max_segments=max_segments)
