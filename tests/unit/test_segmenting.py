"""Cutting a range into segments never overflows, and refuses too many segments by name."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.analysis.catalog import load_catalog
from app.analysis.plan import plan_for
from app.analysis.segmenting import segment_bounds, segment_count
from app.errors import InvalidOptions
from app.options import MIN_SEGMENT_SECONDS, JobOptions


@pytest.mark.parametrize("tiny", [5e-324, sys.float_info.min, 1e-300, 1e-9])
def test_a_tiny_stride_is_too_many_segments_not_an_overflow(tiny: float) -> None:
    """Issue 12 item 1: 5e-324 made ``int(inf)`` raise OverflowError in the worker, three times."""
    with pytest.raises(InvalidOptions, match=r"segments; at most 20,000 per job"):
        segment_bounds(2.0, start=0.0, end=None, segment_seconds=tiny, stride_seconds=tiny)


def test_the_message_names_the_count_and_the_limit() -> None:
    with pytest.raises(InvalidOptions) as caught:
        segment_count(0.0, 2.0, 0.0001, limit=10_000)
    assert "20,000 segments" in caught.value.detail and "at most 10,000" in caught.value.detail
    assert caught.value.extra == {"limit": 10_000}
    with pytest.raises(InvalidOptions, match=r"about 2e\+300 segments"):
        segment_count(0.0, 2.0, 1e-300)
    with pytest.raises(InvalidOptions, match="more than 1e308 segments"):
        segment_count(0.0, 2.0, 5e-324)
    assert segment_count(0.0, 2.0, 0.0002, limit=10_000) == 10_000


@given(stride=st.floats(min_value=0.0, exclude_min=True, allow_infinity=True, allow_nan=False))
def test_any_positive_stride_gives_bounds_or_a_coded_refusal(stride: float) -> None:
    try:
        bounds = segment_bounds(3600.0, start=0.0, end=None, segment_seconds=stride, stride_seconds=stride)
    except InvalidOptions:
        return
    assert 1 <= len(bounds) <= 20_000 and bounds[0][0] == 0.0 and bounds[-1][1] <= 3600.0


@pytest.mark.parametrize("field", ["segment_seconds", "stride_seconds"])
@pytest.mark.parametrize("value", [5e-324, 1e-300, 0.0001, MIN_SEGMENT_SECONDS / 2])
def test_options_refuse_segments_shorter_than_a_frame_at_100_fps(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=r"greater than or equal to 0\.01"):
        JobOptions.model_validate({field: value})
    assert getattr(JobOptions.model_validate({field: MIN_SEGMENT_SECONDS}), field) == MIN_SEGMENT_SECONDS


def test_the_planner_applies_the_limit_it_is_given(tmp_path: Path) -> None:
    spec = load_catalog(tmp_path).get("x3d_xs")
    times = [i / 30 for i in range(60)]
    assert len(plan_for(spec, JobOptions(segment_seconds=0.5), times, 2.0, max_segments=4).segments) == 4
    with pytest.raises(InvalidOptions, match="makes 5 segments; at most 4"):
        plan_for(spec, JobOptions(segment_seconds=0.4), times, 2.0, max_segments=4)
