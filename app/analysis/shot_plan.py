"""Segments and clips that follow the shots (``segmentation=shots``), from grid frames.

The clips' frames depend on the shots, known only once TransNetV2 has seen the frames, and
the video is decoded once. So the decode pass converts a regular *grid* of frames (the
frame nearest every ``tau / 30`` s, the model's frame spacing: about as many as fixed
windows convert) and keeps them (``grid_store``) until the shot they belong to is final;
then this module plans that shot:

* one segment per shot, or, for a shot longer than ``max_segment_seconds``, its equal parts
  (as few as keep each at most that long);
* ``clips_per_segment`` clips per segment (default: the segment's length over the model's
  clip duration, rounded, 1 to 10), centred at ``(2k+1)/(2n)`` of it as fixed windows are;
* each clip's window is the model's native one, shifted inside the *shot* (a shot shorter
  than a clip: the whole shot). The window's T frames are chosen as PyTorchVideo would
  (``plan.select_frames``); each is replaced by the grid frame nearest it inside the shot,
  so a clip never mixes two shots (a short shot repeats frames). A shot holding no grid
  frame (shorter than the grid's spacing) takes the grid frame nearest its middle.

Pure arithmetic in exact seconds (``exact_time``), like ``plan.py``.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from fractions import Fraction

from app.analysis.exact_time import as_fraction
from app.analysis.plan import ClipPlan, SamplingPlan, SegmentPlan, clip_window, select_frames
from app.analysis.results import Shot
from app.errors import InvalidOptions

MAX_CLIPS = 10
"""The most clips a segment gets by default (``clips_per_segment``'s own maximum)."""
_EPS = Fraction(1, 10**6)
"""A shot longer than ``max_segment_seconds`` by less than this (1 us) is not split for it."""


def grid_frames(times: Sequence[Fraction], spacing: Fraction) -> tuple[int, ...]:
    """Indices of the frames nearest ``0, spacing, 2*spacing, ...`` up to the last frame,
    ascending, each once (a video slower than the grid gives every frame)."""
    if not times:
        return ()
    out: list[int] = []
    for k in range(math.floor(times[-1] / spacing) + 1):
        target = k * spacing
        pos = bisect_left(times, target)
        near = [i for i in (pos - 1, pos) if 0 <= i < len(times)]
        best = min(near, key=lambda i: (abs(times[i] - target), i))
        if not out or best > out[-1]:
            out.append(best)
    return tuple(out)


def grid_plan(times: Sequence[Fraction], duration: Fraction, grid: Sequence[int]) -> SamplingPlan:
    """The grid as a plan the decoder runs as it runs any other (``decode.decode_clips``):
    one one-frame "clip" per grid frame, so each comes out converted, once, in time order."""
    clips = tuple(ClipPlan(0, k, times[i], times[i], (i,)) for k, i in enumerate(grid))
    first, last = float(times[grid[0]]), float(times[grid[-1]])
    segment = SegmentPlan(0, 0.0, float(duration), clips, first, last)
    return SamplingPlan(tuple(float(t) for t in times), float(duration), (segment,))


def shot_parts(start: Fraction, end: Fraction, max_seconds: Fraction) -> list[tuple[Fraction, Fraction]]:
    """``[start, end)`` cut into the fewest equal parts of at most ``max_seconds`` each."""
    count = max(1, math.ceil((end - start - _EPS) / max_seconds))
    length = (end - start) / count
    return [(start + i * length, start + (i + 1) * length) for i in range(count)]


def default_clips(length: Fraction, clip_seconds: Fraction) -> int:
    """A segment's length over the clip's duration, rounded half up, from 1 to ``MAX_CLIPS``."""
    return min(MAX_CLIPS, max(1, math.floor(length / clip_seconds + Fraction(1, 2))))


class ShotPlanner:
    """Plans shots as they become final, in order (``plan``); segment indices continue
    from one call to the next. ``keep_from`` is the first grid frame a later shot may use."""

    def __init__(
        self,
        times: Sequence[Fraction],
        duration: Fraction,
        grid: Sequence[int],
        *,
        frames: int,
        clip_seconds: Fraction,
        clips_per_segment: int | None,
        max_segment_seconds: float,
        start: float = 0.0,
        end: float | None = None,
        limit: int,
    ) -> None:
        self.times, self.duration, self.grid = tuple(times), duration, tuple(grid)
        self.grid_times = [self.times[i] for i in self.grid]
        self.float_times = [float(t) for t in self.times]
        self.frames, self.clip_seconds, self.clips = frames, clip_seconds, clips_per_segment
        self.max_segment = as_fraction(max_segment_seconds)
        self.start = as_fraction(start)
        self.stop = min(as_fraction(end), duration) if end is not None else duration
        self.limit = limit
        self.segments = 0
        self.keep_from = self.grid[0] if self.grid else 0

    def exact(self, seconds: float) -> Fraction:
        """A shot bound (the float time of a frame, or the duration) as the frame's exact time."""
        if seconds >= float(self.duration):
            return self.duration
        pos = bisect_left(self.float_times, seconds)
        near = [i for i in (pos - 1, pos) if 0 <= i < len(self.times)]
        return self.times[min(near, key=lambda i: abs(self.float_times[i] - seconds))]

    def plan(self, shots: Sequence[Shot], *, last: bool = False) -> tuple[SegmentPlan, ...]:
        """The segments of ``shots`` (the next final ones; ``last``: the video's last shot
        is among them and ends at the duration), inside ``[start, end)``."""
        out: list[SegmentPlan] = []
        for i, shot in enumerate(shots):
            begin = self.exact(shot.start) if shot.index else Fraction(0)
            finish = self.duration if last and i == len(shots) - 1 else self.exact(shot.end)
            if finish <= begin:
                continue
            low, high = max(begin, self.start), min(finish, self.stop)
            if high > low:
                for a, b in shot_parts(low, high, self.max_segment):
                    out.append(self._segment(a, b, begin, finish))
            self.keep_from = self._grid_before(finish)
        return tuple(out)

    def _segment(
        self, start: Fraction, end: Fraction, shot_start: Fraction, shot_end: Fraction
    ) -> SegmentPlan:
        index = self.segments
        if index >= self.limit:
            raise InvalidOptions(
                f"the shots cut the video into more than {self.limit:,} segments, the most per job "
                "(raise max_segment_seconds, or narrow start/end)",
                limit=self.limit,
            )
        self.segments += 1
        count = self.clips or default_clips(end - start, self.clip_seconds)
        length = end - start
        clips = []
        for k in range(count):
            center = start + (2 * k + 1) * length / (2 * count)
            w_start, w_end = clip_window(center - shot_start, self.clip_seconds, shot_end - shot_start)
            w_start, w_end = w_start + shot_start, w_end + shot_start
            chosen = select_frames(self.times, w_start, w_end, self.frames)
            frames = tuple(self._nearest_grid(self.times[i], shot_start, shot_end) for i in chosen)
            clips.append(ClipPlan(index, k, w_start, w_end, frames))
        used = [self.times[i] for clip in clips for i in clip.frames]
        return SegmentPlan(index, float(start), float(end), tuple(clips), float(min(used)), float(max(used)))

    def _nearest_grid(self, target: Fraction, shot_start: Fraction, shot_end: Fraction) -> int:
        lo, hi = bisect_left(self.grid_times, shot_start), bisect_left(self.grid_times, shot_end)
        if hi <= lo:  # no grid frame inside the shot: the nearest to its middle
            lo, hi, target = 0, len(self.grid), (shot_start + shot_end) / 2
        pos = bisect_left(self.grid_times, target, lo, hi)
        near = [i for i in (pos - 1, pos) if lo <= i < hi]
        return self.grid[min(near, key=lambda i: (abs(self.grid_times[i] - target), i))]

    def _grid_before(self, bound: Fraction) -> int:
        """The last grid frame before ``bound`` (a later tiny shot may fall back on it)."""
        pos = bisect_right(self.grid_times, bound) - 1
        return self.grid[max(pos - 1, 0)] if self.grid else 0
