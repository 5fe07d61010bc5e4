"""How a job's time range is cut into segments: their length, stride, count and bounds.

Pure arithmetic without numpy, torch or av, so that the API refuses a job with too many
segments at submission (``app/api/admission.py``) by the very rule the worker's planner
(``plan.py``) applies to the decoded video. Bounds are exact rationals (``exact_time``):
``start + i * stride`` never accumulates float error, so the clip windows centred in them
are exact too. Counting never overflows: a stride too small to divide by is "too many
segments", not an ``OverflowError``.

A job's segments come from one source: fixed windows (``segment_seconds``/``stride_seconds``
over ``start``/``end``) or the caller's own ranges (``segments``); ``job_bounds`` picks it,
and is where another source (shots) plugs in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

from app.analysis.exact_time import Seconds, as_fraction
from app.analysis.spec import ModelSpec
from app.errors import InvalidOptions, NoFrames
from app.options import JobOptions, TimeRange

MAX_SEGMENTS = 20_000
"""The segment limit of callers without settings (the default of ``max_segments_per_job``)."""
_EPS = Fraction(1, 10**6)
"""A tail shorter than this (1 us) is no segment of its own."""
_EXACT_DIGITS = 10**15
_HUGE = 10**308


def segment_lengths(spec: ModelSpec, options: JobOptions) -> tuple[float, float]:
    """(segment, stride) in seconds: the model's default segment when none is asked, and a
    stride equal to the segment (no overlap) when none is asked."""
    segment = options.segment_seconds or spec.default_segment_seconds
    return segment, options.stride_seconds or segment


def analysed_range(duration: Seconds, *, start: Seconds, end: Seconds | None) -> tuple[float, float]:
    """``[start, min(end, duration))``; NoFrames when it is empty."""
    begin, stop = exact_range(duration, start=start, end=end)
    return float(begin), float(stop)


def exact_range(duration: Seconds, *, start: Seconds, end: Seconds | None) -> tuple[Fraction, Fraction]:
    """``analysed_range`` in exact seconds."""
    begin, length = as_fraction(start), as_fraction(duration)
    stop = min(as_fraction(end), length) if end is not None else length
    if begin >= stop:
        raise NoFrames(
            f"the requested range starts at {float(begin):g}s but the video ends at {float(stop):g}s"
        )
    return begin, stop


def segment_count(
    start: Seconds, stop: Seconds, stride_seconds: Seconds, *, limit: int = MAX_SEGMENTS
) -> int:
    """How many segments start in ``[start, stop)`` every ``stride_seconds`` (at least one);
    InvalidOptions, naming the count and the limit, when that is more than ``limit``."""
    if not 0 < stride_seconds < math.inf:
        raise InvalidOptions(f"stride_seconds must be a finite number > 0, got {stride_seconds!r}")
    span = as_fraction(stop) - as_fraction(start)
    count = max(1, math.ceil((span - _EPS) / as_fraction(stride_seconds)))
    if count <= limit:
        return count
    if count > _HUGE:
        shown = "more than 1e308"
    else:
        shown = f"{count:,}" if count < _EXACT_DIGITS else f"about {float(count):.3g}"
    raise InvalidOptions(
        f"a stride of {float(stride_seconds):g} s over the {float(span):g} s analysed makes {shown} segments; "
        f"at most {limit:,} per job (raise stride_seconds / segment_seconds, or narrow start/end)",
        limit=limit,
    )


def segment_bounds(
    duration: Seconds,
    *,
    start: Seconds,
    end: Seconds | None,
    segment_seconds: Seconds,
    stride_seconds: Seconds,
    limit: int = MAX_SEGMENTS,
) -> list[tuple[Fraction, Fraction]]:
    """``[start + i*stride, min(that + segment, end))`` while the start is before the end, exact."""
    begin, stop = exact_range(duration, start=start, end=end)
    count = segment_count(begin, stop, stride_seconds, limit=limit)
    stride, length = as_fraction(stride_seconds), as_fraction(segment_seconds)
    return [
        (seg_start, min(seg_start + length, stop)) for seg_start in (begin + i * stride for i in range(count))
    ]


def require_ranges_inside(
    duration: Seconds, ranges: Sequence[TimeRange], *, limit: int = MAX_SEGMENTS
) -> None:
    """InvalidOptions naming the first range that ends after ``duration`` (the probed one, at
    submission), or the count when there are more ranges than ``limit`` segments."""
    _require_count(ranges, limit)
    total = as_fraction(duration)
    for i, (begin, stop) in enumerate(ranges):
        if as_fraction(stop) > total:
            raise InvalidOptions(
                f"segments[{i}] [{begin:g}, {stop:g}] ends after the video, which is {float(total):g} s long"
            )


def range_bounds(
    duration: Seconds, ranges: Sequence[TimeRange], *, limit: int = MAX_SEGMENTS
) -> list[tuple[Fraction, Fraction]]:
    """The chosen ranges as segment bounds, exact, in the order given. The decoded video may
    be a frame shorter than the probe said: an end past it is clamped to it; a range that
    starts at or after it is InvalidOptions."""
    _require_count(ranges, limit)
    total = as_fraction(duration)
    out = []
    for i, (begin, stop) in enumerate(ranges):
        first = as_fraction(begin)
        if first >= total:
            raise InvalidOptions(
                f"segments[{i}] [{begin:g}, {stop:g}] starts after the video, which is {float(total):g} s long"
            )
        out.append((first, min(as_fraction(stop), total)))
    return out


def _require_count(ranges: Sequence[TimeRange], limit: int) -> None:
    if len(ranges) > limit:
        raise InvalidOptions(
            f"{len(ranges):,} ranges in segments; at most {limit:,} segments per job", limit=limit
        )


def job_bounds(
    spec: ModelSpec, options: JobOptions, duration: Seconds, *, limit: int = MAX_SEGMENTS
) -> list[tuple[Fraction, Fraction]]:
    """The job's segments, exact: its chosen ranges, else fixed windows of the model's
    default (or the asked) length."""
    if options.segments is not None:
        return range_bounds(duration, options.segments, limit=limit)
    segment, stride = segment_lengths(spec, options)
    return segment_bounds(
        duration,
        start=options.start,
        end=options.end,
        segment_seconds=segment,
        stride_seconds=stride,
        limit=limit,
    )
