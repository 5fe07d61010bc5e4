"""How a job's time range is cut into segments: their length, stride, count and bounds.

Pure arithmetic without numpy, torch or av, so that the API refuses a job with too many
segments at submission (``app/api/admission.py``) by the very rule the worker's planner
(``plan.py``) applies to the decoded video. Counting never overflows: a stride too small
to divide by is "too many segments", not an ``OverflowError``.
"""

from __future__ import annotations

import math

from app.analysis.spec import ModelSpec
from app.errors import InvalidOptions, NoFrames
from app.options import JobOptions

MAX_SEGMENTS = 20_000
"""The segment limit of callers without settings (the default of ``max_segments_per_job``)."""
_EPS = 1e-6
_EXACT_DIGITS = 10**15


def segment_lengths(spec: ModelSpec, options: JobOptions) -> tuple[float, float]:
    """(segment, stride) in seconds: the model's default segment when none is asked, and a
    stride equal to the segment (no overlap) when none is asked."""
    segment = options.segment_seconds or spec.default_segment_seconds
    return segment, options.stride_seconds or segment


def analysed_range(duration: float, *, start: float, end: float | None) -> tuple[float, float]:
    """``[start, min(end, duration))``; NoFrames when it is empty."""
    stop = min(end, duration) if end is not None else duration
    if start >= stop:
        raise NoFrames(f"the requested range starts at {start:g}s but the video ends at {stop:g}s")
    return start, stop


def segment_count(start: float, stop: float, stride_seconds: float, *, limit: int = MAX_SEGMENTS) -> int:
    """How many segments start in ``[start, stop)`` every ``stride_seconds`` (at least one);
    InvalidOptions, naming the count and the limit, when that is more than ``limit``."""
    if not 0 < stride_seconds < math.inf:
        raise InvalidOptions(f"stride_seconds must be a finite number > 0, got {stride_seconds!r}")
    quotient = (stop - start - _EPS) / stride_seconds
    if not math.isfinite(quotient):
        shown = "more than 1e308"
    else:
        count = max(1, math.ceil(quotient))
        if count <= limit:
            return count
        shown = f"{count:,}" if count < _EXACT_DIGITS else f"about {float(count):.3g}"
    raise InvalidOptions(
        f"a stride of {stride_seconds:g} s over the {stop - start:g} s analysed makes {shown} segments; "
        f"at most {limit:,} per job (raise stride_seconds / segment_seconds, or narrow start/end)",
        limit=limit,
    )


def segment_bounds(
    duration: float,
    *,
    start: float,
    end: float | None,
    segment_seconds: float,
    stride_seconds: float,
    limit: int = MAX_SEGMENTS,
) -> list[tuple[float, float]]:
    """``[start + i*stride, min(that + segment, end))`` while the start is before the end."""
    start, stop = analysed_range(duration, start=start, end=end)
    count = segment_count(start, stop, stride_seconds, limit=limit)
    return [
        (seg_start, min(seg_start + segment_seconds, stop))
        for seg_start in (start + i * stride_seconds for i in range(count))
    ]
