"""The sampling plan: segment arithmetic and PyTorchVideo's frame choice, checked against torch."""

from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from app.analysis.catalog import load_catalog
from app.analysis.exact_time import as_fraction
from app.analysis.plan import (
    effective_options,
    emulated_subsample_indices,
    emulation_is_exact,
    make_plan,
    plan_for,
    uniform_subsample_indices,
)
from app.analysis.segmenting import segment_bounds
from app.errors import InvalidOptions, NoFrames
from app.options import JobOptions

FPS = [Fraction(25), Fraction(30), Fraction(60), Fraction(24000, 1001)]


def cfr_times(fps: Fraction, seconds: float) -> list[float]:
    return [float(i / fps) for i in range(int(seconds * fps))]


@st.composite
def vfr_times(draw: st.DrawFn) -> list[float]:
    gaps = draw(st.lists(st.floats(min_value=0.004, max_value=0.5), min_size=1, max_size=400))
    times, t = [], 0.0
    for gap in gaps:
        times.append(round(t * 90000) / 90000)
        t += gap
    return times


@st.composite
def frame_times(draw: st.DrawFn) -> list[float]:
    if draw(st.booleans()):
        return draw(vfr_times())
    return cfr_times(draw(st.sampled_from(FPS)), draw(st.floats(min_value=0.05, max_value=20)))


def reference_clip(
    times: list[Fraction], duration: Fraction, center: Fraction, clip_seconds: Fraction, t: int
) -> tuple[list[int], tuple[Fraction, Fraction]]:
    """Straight from the definitions, in exact seconds: half-open window, torch.linspace
    subsample, nearest fallback."""
    if clip_seconds >= duration:
        start, end = Fraction(0), duration
    else:
        start = min(max(center - clip_seconds / 2, Fraction(0)), duration - clip_seconds)
        end = start + clip_seconds
    inside = [i for i, x in enumerate(times) if start <= x < end]
    if not inside:
        mid = (start + end) / 2
        nearest = min(range(len(times)), key=lambda i: (abs(times[i] - mid), i))
        return [nearest] * t, (start, end)
    idx = torch.linspace(0, len(inside) - 1, t).clamp(0, len(inside) - 1).long().tolist()
    return [inside[j] for j in idx], (start, end)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 5000), t=st.integers(1, 128))
def test_subsample_matches_torch_linspace(n: int, t: int) -> None:
    expected = torch.linspace(0, n - 1, t).clamp(0, n - 1).long().tolist()
    assert uniform_subsample_indices(n, t) == expected


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 5000), t=st.integers(1, 128))
def test_torch_free_emulation_is_within_one_frame(n: int, t: int) -> None:
    expected = torch.linspace(0, n - 1, t).clamp(0, n - 1).long().tolist()
    got = emulated_subsample_indices(n, t)
    assert len(got) == t and got == sorted(got)
    assert all(abs(a - b) <= 1 for a, b in zip(got, expected, strict=True))


@pytest.mark.parametrize("t", [1, 2, 4, 8, 13, 16, 32, 64])
def test_the_emulation_is_only_trusted_where_it_equals_torch(t: int) -> None:
    """Without torch loaded, the plan takes the emulation where ``emulation_is_exact`` says so:
    there it must be torch's answer, for every window length up to 2,400 frames."""
    trusted = 0
    for n in range(1, 2401):
        if emulation_is_exact(n, t):
            trusted += 1
            assert (
                emulated_subsample_indices(n, t)
                == torch.linspace(0, n - 1, t).clamp(0, n - 1).long().tolist()
            )
    assert trusted >= 1000, "many windows need no torch"


def test_common_windows_need_no_torch() -> None:
    """30 fps: x3d_s's 78-frame windows, SlowFast's 64 and its slow pathway's 8 of 32."""
    assert emulation_is_exact(78, 13) and emulation_is_exact(64, 32) and emulation_is_exact(32, 8)
    assert not emulation_is_exact(77, 13), (
        "19.0 exactly (76 * 3 / 12): the kernels may truncate it either way"
    )


def test_subsample_known_float32_cases() -> None:
    """float64 arithmetic would give different indices here (n=148, T=64 is one such case)."""
    for n, t in [(148, 64), (172, 64), (512, 64), (295, 64)]:
        assert uniform_subsample_indices(n, t) == torch.linspace(0, n - 1, t).long().tolist()


@settings(max_examples=150, deadline=None)
@given(
    times=frame_times(),
    frames=st.sampled_from([1, 4, 8, 13, 16, 32]),
    rate=st.sampled_from([2, 4, 5, 6, 8, 12]),
    segment=st.floats(min_value=0.3, max_value=5),
    k=st.integers(1, 3),
)
def test_plan_properties(times: list[float], frames: int, rate: int, segment: float, k: int) -> None:
    duration = times[-1] + 1 / 30
    clip_seconds = frames * rate / 30
    plan = make_plan(
        times,
        duration,
        frames=frames,
        clip_seconds=clip_seconds,
        segment_seconds=segment,
        stride_seconds=segment,
        clips_per_segment=k,
    )
    segs = plan.segments
    assert segs[0].start == 0.0
    assert segs[-1].end == pytest.approx(duration)
    for a, b in itertools.pairwise(segs):
        assert a.end == pytest.approx(b.start, abs=1e-9)
    exact = [as_fraction(x) for x in times]  # how make_plan reads float seconds
    for seg in segs:
        assert seg.start < seg.end
        assert len(seg.clips) == k
        seg_start = seg.index * as_fraction(segment)
        seg_end = min(seg_start + as_fraction(segment), as_fraction(duration))
        assert (seg.start, seg.end) == (float(seg_start), float(seg_end))
        for clip in seg.clips:
            assert len(clip.frames) == frames
            chosen = [times[i] for i in clip.frames]
            assert chosen == sorted(chosen)
            assert 0.0 <= clip.window_start <= clip.window_end <= duration + 1e-9
            if any(clip.window_start <= x < clip.window_end for x in exact):
                assert all(clip.window_start <= exact[i] < clip.window_end for i in clip.frames)
            center = seg_start + (clip.index + Fraction(1, 2)) * (seg_end - seg_start) / k
            clip_exact = Fraction(frames * rate, 30)
            expected, window = reference_clip(exact, as_fraction(duration), center, clip_exact, frames)
            assert list(clip.frames) == expected
            assert (clip.window_start, clip.window_end) == window
        used = [times[i] for c in seg.clips for i in c.frames]
        assert (seg.first_frame_time, seg.last_frame_time) == (min(used), max(used))
    assert plan.needed_frames == {i for c in plan.clips for i in c.frames}


@pytest.mark.parametrize("fps", FPS, ids=str)
def test_constant_rate_window_takes_every_tau_th_frame(fps: Fraction) -> None:
    """A 16x4 window holds about 2.13 s of frames; the first and last of them are always taken."""
    times = cfr_times(fps, 10)
    plan = make_plan(times, 10.0, frames=16, clip_seconds=16 * 4 / 30, segment_seconds=2, stride_seconds=2)
    clip = plan.segments[1].clips[0]
    inside = [i for i, x in enumerate(times) if clip.window_start <= as_fraction(x) < clip.window_end]
    assert abs(len(inside) - 16 * 4 / 30 * float(fps)) <= 1
    assert clip.frames[0] == inside[0] and clip.frames[-1] == inside[-1]


def test_overlapping_segments_and_partial_last() -> None:
    bounds = segment_bounds(10.0, start=1.0, end=None, segment_seconds=4, stride_seconds=3)
    assert bounds == [(1.0, 5.0), (4.0, 8.0), (7.0, 10.0)]
    assert segment_bounds(10.0, start=0, end=9.5, segment_seconds=4, stride_seconds=4)[-1] == (8.0, 9.5)


def test_short_video_clip_covers_whole_video() -> None:
    times = cfr_times(Fraction(30), 0.5)
    plan = make_plan(times, 0.5, frames=16, clip_seconds=2.133, segment_seconds=2, stride_seconds=2)
    clip = plan.segments[0].clips[0]
    assert (clip.window_start, clip.window_end) == (0.0, 0.5)
    assert clip.frames == tuple(torch.linspace(0, 14, 16).long().tolist())


def test_empty_window_takes_frame_nearest_its_centre() -> None:
    times = [0.0, 5.0, 9.0]
    plan = make_plan(times, 10.0, frames=4, clip_seconds=1.0, segment_seconds=2, stride_seconds=2)
    assert [s.clips[0].frames for s in plan.segments] == [(0,) * 4, (1,) * 4, (1,) * 4, (1,) * 4, (2,) * 4]


def test_errors() -> None:
    with pytest.raises(NoFrames):
        make_plan([], 1.0, frames=4, clip_seconds=1, segment_seconds=1, stride_seconds=1)
    with pytest.raises(NoFrames, match="starts at"):
        make_plan([0.0], 1.0, frames=4, clip_seconds=1, segment_seconds=1, stride_seconds=1, start=2.0)
    with pytest.raises(InvalidOptions):
        segment_bounds(3600.0, start=0, end=None, segment_seconds=1, stride_seconds=0.001)


def test_plan_for_fills_model_defaults(tmp_path: Path) -> None:
    spec = load_catalog(tmp_path).get("x3d_s")
    times = cfr_times(Fraction(30), 6)
    used = effective_options(spec, JobOptions(end=50), 6.0)
    assert (used["segment_seconds"], used["stride_seconds"], used["end"]) == (2.5, 2.5, 6.0)
    plan = plan_for(spec, JobOptions(stride_seconds=2.0, clips_per_segment=2), times, 6.0)
    assert [(s.start, s.end) for s in plan.segments] == [(0.0, 2.5), (2.0, 4.5), (4.0, 6.0)]
    assert all(
        len(c.frames) == 13 and c.window_end - c.window_start == pytest.approx(2.6) for c in plan.clips
    )
