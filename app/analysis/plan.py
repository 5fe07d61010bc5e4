"""The sampling plan: which frames (by presentation time) feed which clip of which segment.

Pure arithmetic, no torch or av, so it is cheap to test exhaustively. Frames are chosen
exactly as PyTorchVideo does at test time: every frame with ``start <= t < end`` in the
clip window (``EncodedVideoPyAV.get_clip``), reduced to T frames by
``UniformTemporalSubsample`` (``linspace(0, n-1, T)`` in float32, truncated).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise
from typing import Any

import numpy as np

from app.analysis.segmenting import MAX_SEGMENTS, segment_bounds, segment_lengths
from app.analysis.spec import ModelSpec
from app.errors import NoFrames
from app.options import JobOptions


def uniform_subsample_indices(n: int, t: int) -> list[int]:
    """``torch.linspace(0, n-1, t).clamp(0, n-1).long()``: PyTorchVideo's own frame choice.

    torch's CPU linspace kernel is vectorised, and its rounding depends on the SIMD width
    of the machine (values landing within float32 epsilon of an integer truncate either
    way), so no portable formula reproduces it bit for bit. Where torch is importable (the
    worker, which plans in the parent of the decode child) it is asked directly; the numpy
    emulation is the fallback for torch-free processes.
    """
    if n < 1 or t < 1:
        raise ValueError("need n >= 1 and t >= 1")
    try:
        import torch
    except ImportError:  # pragma: no cover - every worker has torch
        return emulated_subsample_indices(n, t)
    return [int(i) for i in torch.linspace(0, n - 1, t).clamp(0, n - 1).long().tolist()]


def emulated_subsample_indices(n: int, t: int) -> list[int]:
    """torch's scalar linspace formula in float32 (first half ``start + step*i``, second half
    ``end - step*(t-1-i)``); equal to torch except where SIMD rounding differs by one frame."""
    if t == 1:
        return [0]
    start, end = np.float32(0), np.float32(n - 1)
    step = np.float32(end - start) / np.float32(t - 1)
    i = np.arange(t, dtype=np.float32)
    lower = start + step * i
    upper = end - step * (np.float32(t - 1) - i)
    values = np.where(np.arange(t) < t // 2, lower, upper).astype(np.float32)
    return [int(v) for v in np.clip(values, start, end).astype(np.int64)]


@dataclass(frozen=True)
class ClipPlan:
    segment: int
    index: int
    window_start: float
    window_end: float
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


def clip_window(center: float, clip_seconds: float, duration: float) -> tuple[float, float]:
    """The native window centred on ``center``, shifted to lie inside ``[0, duration]``."""
    if clip_seconds >= duration:
        return 0.0, duration
    begin = center - clip_seconds / 2
    begin = min(max(begin, 0.0), duration - clip_seconds)
    return begin, begin + clip_seconds


def select_frames(times: Sequence[float], window_start: float, window_end: float, t: int) -> tuple[int, ...]:
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
    frame_times: Sequence[float],
    duration: float,
    *,
    frames: int,
    clip_seconds: float,
    segment_seconds: float,
    stride_seconds: float,
    clips_per_segment: int = 1,
    start: float = 0.0,
    end: float | None = None,
    max_segments: int = MAX_SEGMENTS,
) -> SamplingPlan:
    """Cut ``[start, end)`` into segments (at most ``max_segments``, else InvalidOptions) and
    give each ``clips_per_segment`` clips of T frames."""
    times = tuple(float(t) for t in frame_times)
    if not times:
        raise NoFrames("the video stream has no frames")
    if any(b < a for a, b in pairwise(times)):
        raise ValueError("frame_times must be sorted")
    segments = []
    for index, (seg_start, seg_end) in enumerate(
        segment_bounds(
            duration,
            start=start,
            end=end,
            segment_seconds=segment_seconds,
            stride_seconds=stride_seconds,
            limit=max_segments,
        )
    ):
        length = seg_end - seg_start
        clips = []
        for k in range(clips_per_segment):
            center = seg_start + (k + 0.5) * length / clips_per_segment
            w_start, w_end = clip_window(center, clip_seconds, duration)
            chosen = select_frames(times, w_start, w_end, frames)
            clips.append(ClipPlan(index, k, w_start, w_end, chosen))
        used = [times[i] for clip in clips for i in clip.frames]
        segments.append(SegmentPlan(index, seg_start, seg_end, tuple(clips), min(used), max(used)))
    return SamplingPlan(times, duration, tuple(segments))


def effective_options(spec: ModelSpec, options: JobOptions, duration: float) -> dict[str, Any]:
    """The options actually used: the model's default segment, stride = segment, ``end`` clamped."""
    data = options.model_dump()
    data["segment_seconds"], data["stride_seconds"] = segment_lengths(spec, options)
    data["end"] = min(options.end, duration) if options.end is not None else duration
    return data


def plan_for(
    spec: ModelSpec,
    options: JobOptions,
    frame_times: Sequence[float],
    duration: float,
    *,
    max_segments: int = MAX_SEGMENTS,
) -> SamplingPlan:
    """The plan for one job: ``make_plan`` with the spec's clip and the effective options."""
    used = effective_options(spec, options, duration)
    return make_plan(
        frame_times,
        duration,
        frames=spec.frames,
        clip_seconds=spec.clip_seconds,
        segment_seconds=used["segment_seconds"],
        stride_seconds=used["stride_seconds"],
        clips_per_segment=used["clips_per_segment"],
        start=used["start"],
        end=used["end"],
        max_segments=max_segments,
    )
