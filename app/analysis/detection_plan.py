"""Which frames a detection job decodes: keyframes, and the AVA clip around each one.

Pure arithmetic, no torch or av. A keyframe is where people are found and labelled: every
``keyframe_seconds`` (the centre of each interval from ``start``; AVA labels one keyframe a
second) or at the times of the caller's ``boxes``. Its clip follows PySlowFast's AVA loader
(``ava_dataset.py`` + ``utils.get_sequence``): T frames ``tau`` apart at 30 fps, from
``T*tau/2`` frames before the keyframe, indices clamped to the video (edge frames repeat),
so the keyframe sits at the clip's centre (index ``T//2``). Each clip's frame list ends with
the keyframe itself, which the person detector sees at full size.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING

from app.analysis.exact_time import Seconds, as_fraction, exact_times, scan_timeline
from app.analysis.plan import ClipPlan, SamplingPlan, SegmentPlan
from app.analysis.spec import SOURCE_FPS, ModelSpec
from app.errors import InvalidOptions, NoFrames
from app.options import JobOptions

if TYPE_CHECKING:
    from app.analysis.scan import VideoScan

__all__ = [
    "KeyframePlan",
    "clip_indices",
    "keyframe_times",
    "nearest_index",
    "plan_for_detection_scan",
    "plan_keyframes",
]


def keyframe_times(
    duration: float, *, every: float, start: float = 0.0, end: float | None = None
) -> list[float]:
    """``start + (k + 1/2) * every`` inside ``[start, min(end, duration))``; at least the span's middle."""
    stop = duration if end is None else min(end, duration)
    if stop <= start:
        raise NoFrames(
            f"nothing to analyse between {start:g} s and {stop:g} s (the video lasts {duration:g} s)"
        )
    times, k = [], 0
    while (t := start + (k + 0.5) * every) < stop:
        times.append(t)
        k += 1
    return times or [(start + stop) / 2]


def nearest_index(times: Sequence[Fraction], target: Fraction) -> int:
    """The frame shown closest to ``target`` (the earlier one on a tie), clamped to the video."""
    pos = bisect_left(times, target)
    candidates = [i for i in (pos - 1, pos) if 0 <= i < len(times)]
    return min(candidates, key=lambda i: (abs(times[i] - target), i))


def clip_indices(times: Sequence[Fraction], key: int, frames: int, sampling_rate: int) -> tuple[int, ...]:
    """PySlowFast's ``get_sequence`` in time: offsets ``-T*tau/2 + j*tau`` frames of 30 fps
    video around the keyframe, each the nearest frame of this video (clamped at its ends)."""
    half = frames * sampling_rate // 2
    step = 1 / as_fraction(SOURCE_FPS)
    return tuple(nearest_index(times, times[key] + (j * sampling_rate - half) * step) for j in range(frames))


class KeyframePlan:
    """The keyframes of one job and the ``SamplingPlan`` that decodes them: segment ``k`` is
    keyframe ``k``, with one clip of T frames + the keyframe (``decode_clips`` assembles any
    index list)."""

    def __init__(self, plan: SamplingPlan, times: tuple[float, ...], requested: tuple[float, ...]) -> None:
        self.plan = plan
        self.times = times
        """Each keyframe's presentation time (the frame actually shown), seconds."""
        self.requested = requested
        """The time each keyframe was asked for (a ``boxes`` entry's ``time``, or the grid's)."""

    def __len__(self) -> int:
        return len(self.times)


def plan_keyframes(
    spec: ModelSpec, options: JobOptions, frame_times: Sequence[Seconds], duration: Seconds, *, limit: int
) -> KeyframePlan:
    """The job's keyframes (``boxes`` times, else the ``keyframe_seconds`` grid) and their clips.
    More than ``limit`` keyframes is InvalidOptions, as too many segments are."""
    exact, duration = exact_times(frame_times), float(duration)
    if not exact:
        raise NoFrames("the video stream has no frames")
    if options.boxes is not None:
        wanted = [entry.time for entry in options.boxes]
        late = [t for t in wanted if t > duration]
        if late:
            raise InvalidOptions(f"boxes at {late[0]:g} s: after the video's end ({duration:g} s)")
    else:
        wanted = keyframe_times(
            duration, every=options.keyframe_seconds, start=options.start, end=options.end
        )
    if len(wanted) > limit:
        raise InvalidOptions(
            f"{len(wanted):,} keyframes exceed the limit of {limit:,} per job (raise keyframe_seconds)"
        )
    segments, shown = [], []
    for k, t in enumerate(wanted):
        key = nearest_index(exact, as_fraction(t))
        indices = (*clip_indices(exact, key, spec.frames, spec.sampling_rate), key)
        clip = ClipPlan(k, 0, exact[min(indices)], exact[max(indices)], indices)
        used = [float(exact[i]) for i in indices]
        segments.append(SegmentPlan(k, float(t), float(t), (clip,), min(used), max(used)))
        shown.append(float(exact[key]))
    plan = SamplingPlan(tuple(float(t) for t in exact), float(duration), tuple(segments))
    return KeyframePlan(plan, tuple(shown), tuple(float(t) for t in wanted))


def plan_for_detection_scan(
    spec: ModelSpec, options: JobOptions, scan: VideoScan, *, limit: int
) -> KeyframePlan:
    """``plan_keyframes`` on a ``VideoScan``'s exact timeline."""
    times, duration = scan_timeline(scan)
    return plan_keyframes(spec, options, times, duration, limit=limit)
