"""Chosen time ranges (``segments``): validation, exact clip positions, the admission rule,
runs and summary over unordered or overlapping ranges, and the CLI notation."""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from app.analysis.assemble import runs, summary
from app.analysis.catalog import load_catalog
from app.analysis.exact_time import as_fraction
from app.analysis.multilabel import label_runs
from app.analysis.plan import effective_options, model_clip_seconds, plan_for
from app.analysis.results import Label, SegmentResult
from app.analysis.segmenting import range_bounds, require_ranges_inside
from app.analysis.spec import ModelSpec
from app.api.forms import parse_job_form
from app.cli.analyze_cmd import ranges_arg
from app.errors import InvalidOptions
from app.options import MAX_RANGES, JobOptions, parse_ranges

MODELS = Path(__file__).resolve().parents[2] / "models"
TIMES = [Fraction(i, 30) for i in range(30 * 14)]  # 14 s at 30 fps
DURATION = Fraction(14)


@pytest.fixture(scope="module")
def demo() -> ModelSpec:
    return load_catalog(MODELS).get("demo_motion")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"segments": []}, "at least one"),
        ({"segments": [[0, 1]] * (MAX_RANGES + 1)}, "at most 1,000 ranges"),
        ({"segments": [[0, 1], [3, 3]]}, "range 1 [3, 3]: end must be greater than start"),
        ({"segments": [[5, 2]]}, "end must be greater than start"),
        ({"segments": [[-1, 2]]}, "greater than or equal to 0"),
        ({"segments": [[0, float("inf")]]}, "finite"),
        ({"segments": [[0, 1, 2]]}, "segments.0"),
        ({"segments": [[0, 4]], "segment_seconds": 2}, "segments conflicts with segment_seconds"),
        ({"segments": [[0, 4]], "stride_seconds": 1}, "segments conflicts with stride_seconds"),
        ({"segments": [[0, 4]], "start": 1, "end": 3}, "segments conflicts with start, end"),
    ],
)
def test_bad_ranges_are_refused_with_the_reason(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        JobOptions(**values)  # type: ignore[arg-type]


def test_a_thousand_overlapping_unordered_ranges_are_fine_and_survive_storage() -> None:
    ranges = [[i % 7, i % 7 + 0.5 + i / 1000] for i in range(MAX_RANGES)]
    options = JobOptions(segments=ranges)  # type: ignore[arg-type]
    assert JobOptions(**options.model_dump()) == options  # the worker re-reads the stored dump
    assert [list(r) for r in options.segments or ()] == ranges


def test_the_form_takes_the_json_text_and_names_bad_json() -> None:
    catalog = load_catalog(MODELS)
    _, options = parse_job_form({"segments": " [[0, 4], [10, 12.5]] "}, "demo_motion", catalog)
    assert options.segments == ((0.0, 4.0), (10.0, 12.5))
    with pytest.raises(InvalidOptions, match="segments must be JSON"):
        parse_job_form({"segments": "0:4"}, "demo_motion", catalog)
    with pytest.raises(InvalidOptions, match="segments conflicts with segment_seconds"):
        parse_job_form({"segments": "[[0, 4]]", "segment_seconds": "2"}, "demo_motion", catalog)


@pytest.mark.parametrize("clips", [1, 2, 3, 10])
def test_each_range_is_one_segment_with_its_clips_spread_evenly(demo: ModelSpec, clips: int) -> None:
    ranges = [(10.0, 12.5), (0.0, 4.0), (1.0, 2.0), (0.1, 13.9)]  # unordered, overlapping
    plan = plan_for(demo, JobOptions(segments=tuple(ranges), clips_per_segment=clips), TIMES, DURATION)
    length = model_clip_seconds(demo)
    assert [(s.index, s.start, s.end) for s in plan.segments] == [
        (i, a, b) for i, (a, b) in enumerate(ranges)
    ]
    for seg, (a, b) in zip(plan.segments, ranges, strict=True):
        begin, stop = as_fraction(a), as_fraction(b)
        assert [c.index for c in seg.clips] == list(range(clips))
        for k, clip in enumerate(seg.clips):
            assert clip.window_end - clip.window_start == length  # the native window, exactly
            centre = begin + (2 * k + 1) * (stop - begin) / (2 * clips)
            wanted = min(max(centre - length / 2, Fraction(0)), DURATION - length)
            assert clip.window_start == wanted  # centred, shifted only to stay in the video
            assert all(clip.window_start <= TIMES[i] < clip.window_end for i in clip.frames)
            assert len(clip.frames) == demo.frames


def test_a_range_past_the_decoded_end_is_clamped_or_refused(demo: ModelSpec) -> None:
    plan = plan_for(demo, JobOptions(segments=((12.0, 14.02),)), TIMES, DURATION)
    assert (plan.segments[0].start, plan.segments[0].end) == (12.0, 14.0)
    with pytest.raises(InvalidOptions, match=r"segments\[1\] \[14, 15\] starts after the video"):
        plan_for(demo, JobOptions(segments=((0, 1), (14, 15))), TIMES, DURATION)
    with pytest.raises(InvalidOptions, match="3 ranges in segments; at most 2 segments"):
        plan_for(demo, JobOptions(segments=((0, 1),) * 3), TIMES, DURATION, max_segments=2)


def test_submission_refuses_a_range_ending_after_the_probed_video() -> None:
    require_ranges_inside(14.0, [(0.0, 14.0), (3.0, 5.0)])  # ending at the very end is inside
    with pytest.raises(
        InvalidOptions, match=r"segments\[1\] \[3, 14.5\] ends after the video, which is 14 s"
    ):
        require_ranges_inside(14.0, [(0.0, 1.0), (3.0, 14.5)])
    with pytest.raises(InvalidOptions, match="at most 1 segments"):
        require_ranges_inside(14.0, [(0.0, 1.0), (2.0, 3.0)], limit=1)
    assert range_bounds(14.0, [(0.1, 0.3)]) == [(Fraction(1, 10), Fraction(3, 10))]


def test_effective_options_echo_the_ranges_and_their_span(demo: ModelSpec) -> None:
    used = effective_options(demo, JobOptions(segments=((10.0, 12.5), (2.0, 4.0))), 12.0)
    assert used["segments"] == [[10.0, 12.5], [2.0, 4.0]]
    assert (used["segment_seconds"], used["stride_seconds"], used["start"], used["end"]) == (
        None,
        None,
        2.0,
        12.0,
    )


LABELS = ("walk", "talk")


def segment(index: int, start: float, end: float, probs: list[float]) -> tuple[SegmentResult, torch.Tensor]:
    best = max(range(len(probs)), key=lambda i: probs[i])
    label = Label(LABELS[best], best, probs[best])
    return SegmentResult(index, start, end, start, end, (label,)), torch.tensor(probs)


def test_runs_merge_ranges_consecutive_by_start_whatever_their_order() -> None:
    pairs = [
        segment(0, 10.0, 12.0, [0.1, 0.9]),  # talk
        segment(1, 0.0, 6.0, [0.8, 0.2]),  # walk
        segment(2, 1.0, 2.0, [0.7, 0.3]),  # walk, inside range 1: the run keeps ending at 6
        segment(3, 5.0, 8.0, [0.2, 0.8]),  # talk
    ]
    segments, means = [s for s, _ in pairs], {s.index: p for s, p in pairs}
    got = runs(segments, means, LABELS, min_score=0.0)
    assert [(r.label, r.start, r.end) for r in got] == [("walk", 0.0, 6.0), ("talk", 5.0, 12.0)]
    assert [(r.label, r.start, r.end) for r in label_runs(segments)] == [
        ("walk", 0.0, 6.0),
        ("talk", 5.0, 12.0),
    ]


def test_the_summary_weighs_segments_by_their_length() -> None:
    pairs = [segment(0, 0.0, 9.0, [0.6, 0.4]), segment(1, 9.0, 10.0, [0.0, 1.0])]
    segments, means = [s for s, _ in pairs], {s.index: p for s, p in pairs}
    top = summary(segments, means, LABELS, k=2, min_score=0.0)
    assert [x.label for x in top] == ["walk", "talk"]  # unweighted it would be talk (0.7 vs 0.3)
    assert top[0].score == pytest.approx(0.6 * 0.9) and top[1].score == pytest.approx(0.4 * 0.9 + 0.1)


def test_the_cli_notation() -> None:
    assert parse_ranges("0:4, 10:12.5") == [[0.0, 4.0], [10.0, 12.5]]
    assert ranges_arg("0:4,10:12.5,") == [[0.0, 4.0], [10.0, 12.5]]
    for bad in ("", "0-4", "0:4,a:5", "1:2:3"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"START:END|no ranges"):
            ranges_arg(bad)
