"""Frame-exact clip windows: a window ``[t0, t0 + T*tau/30)`` holds exactly the frames whose
timestamps fall in it, and each clip's frames are the ones PyTorchVideo's
``EncodedVideo.get_clip`` + ``UniformTemporalSubsample`` pick for the same exact window."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from app.analysis.catalog import load_catalog
from app.analysis.exact_time import as_fraction, scan_timeline
from app.analysis.plan import model_clip_seconds, plan_for, plan_for_scan
from app.analysis.scan import VideoScan, scan_video
from app.analysis.segmenting import segment_bounds
from app.options import JobOptions
from app.settings import Settings
from tests.media import write_video
from tests.unit.test_decode import index_frame
from tests.unit.test_tutorial_transform import uniform_temporal_subsample

ALLOWED = Settings().allowed_format_list
RATES = [Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30), Fraction(60)]
MODELS = ["x3d_xs", "x3d_s", "slow_r50", "slowfast_r50"]
"""4x12, 13x6, 8x8 and 32x2: windows of 1.6, 2.6, 2.133 and 2.133 s."""
OPTIONS = [JobOptions(segment_seconds=2), JobOptions(segment_seconds=1, clips_per_segment=3), JobOptions()]


def shown_index(rgb: np.ndarray) -> int:
    """The frame index (mod 256) that ``index_frame`` painted, read back from a decoded frame."""
    width = rgb.shape[1]
    low = round((float(np.median(rgb[:, : width // 2 - 4])) - 8) / 16)
    high = round((float(np.median(rgb[:, width // 2 + 4 :])) - 8) / 16)
    return low + 16 * high


def exact_inside(scan: VideoScan, start: Fraction, end: Fraction) -> list[int]:
    """Indices of the frames whose pts, in ticks of the time base, lie in ``[start, end)``."""
    base = scan.time_base
    return [
        i
        for i, p in enumerate(scan.frame_pts)
        if p is not None and start <= (p - scan.start_pts) * base < end
    ]


def vfr_stamps() -> list[float]:
    """About 4 s of irregular gaps on a 10 ms grid, so window edges such as 2.2 s hit frames."""
    stamps = [0.0]
    for i in range(110):
        stamps.append(round(stamps[-1] + (0.02, 0.05, 0.03, 0.01, 0.1)[i % 5], 2))
    return stamps


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("windows")
    out = {
        str(rate): write_video(
            folder / f"cfr_{float(rate):.3f}.mp4",
            seconds=4,
            fps=rate,
            width=64,
            height=48,
            frame_fn=index_frame,
        )
        for rate in RATES
    }
    out["vfr"] = write_video(
        folder / "vfr.mp4", timestamps=vfr_stamps(), width=64, height=48, frame_fn=index_frame
    )
    return out


@pytest.mark.parametrize("video", [*map(str, RATES), "vfr"])
def test_every_clip_is_what_pytorchvideo_picks_for_the_exact_window(
    videos: dict[str, Path], video: str, tmp_path: Path
) -> None:
    from pytorchvideo.data.encoded_video import EncodedVideo

    path = videos[video]
    catalog = load_catalog(tmp_path)
    scan = scan_video(path, ALLOWED)
    assert len(scan.frame_pts) < 256  # shown_index is the index mod 256
    reference = EncodedVideo.from_path(str(path), decode_audio=False, decoder="pyav")
    clips = on_a_frame = 0
    for model in MODELS:
        spec = catalog.get(model)
        for options in OPTIONS:
            for clip in plan_for_scan(spec, options, scan).clips:
                assert clip.window_end - clip.window_start == min(
                    model_clip_seconds(spec), scan_timeline(scan)[1]
                )
                inside = exact_inside(scan, clip.window_start, clip.window_end)
                video_clip = reference.get_clip(clip.window_start, clip.window_end)["video"]
                shown = [shown_index(f) for f in video_clip.permute(1, 2, 3, 0).numpy().astype(np.uint8)]
                assert shown == [i % 256 for i in inside]  # get_clip: the same frames as the exact window
                kept = uniform_temporal_subsample(torch.tensor(inside).view(1, -1, 1, 1), spec.frames)
                assert list(clip.frames) == kept.flatten().tolist()
                clips += 1
                on_a_frame += any(
                    (p - scan.start_pts) * scan.time_base == clip.window_end for p in scan.frame_pts
                )
    assert clips >= 60
    if video in ("Fraction(30, 1)", "Fraction(60, 1)", "vfr"):
        assert on_a_frame > 0  # windows ending exactly on a frame, the case float arithmetic got wrong


def test_the_issue_window_takes_48_frames_at_30_fps(tmp_path: Path) -> None:
    """x3d_xs (4x12 -> 1.6 s), 2 s segments: segment 1's window is [2.2, 3.8), exactly."""
    from pytorchvideo.data.encoded_video import EncodedVideo

    path = write_video(tmp_path / "v.mp4", seconds=6, fps=30, width=64, height=48, frame_fn=index_frame)
    scan = scan_video(path, ALLOWED)
    spec = load_catalog(tmp_path).get("x3d_xs")
    clip = plan_for_scan(spec, JobOptions(segment_seconds=2), scan).segments[1].clips[0]
    assert (clip.window_start, clip.window_end) == (Fraction(11, 5), Fraction(19, 5))
    assert exact_inside(scan, clip.window_start, clip.window_end) == list(range(66, 114))  # 48 frames
    assert 2.2 + 1.6 == 3.8000000000000003  # the float end the planner used to compute
    reference = EncodedVideo.from_path(str(path), decode_audio=False, decoder="pyav")
    assert reference.get_clip(Fraction(11, 5), Fraction(19, 5))["video"].shape[1] == 48
    # Given float seconds, PyTorchVideo rounds 3.8000000000000003 s up to the tick after the
    # 3.8 s frame's and takes it too: the deliberate difference of docs/MODELS.md "Clip windows".
    assert reference.get_clip(2.2, 2.2 + 1.6)["video"].shape[1] == 49
    assert clip.frames == (66, 81, 97, 113)


def test_float_times_are_read_exactly_and_agree_with_the_scan(tmp_path: Path) -> None:
    """Callers with float seconds (tests, benches) get the plan the exact timeline gives."""
    for rate in (Fraction(30000, 1001), Fraction(60)):
        path = write_video(tmp_path / "v.mp4", seconds=3, fps=rate, width=64, height=48)
        scan = scan_video(path, ALLOWED)
        times, duration = scan_timeline(scan)
        assert times == tuple(Fraction(i) / rate for i in range(len(times)))
        for model in MODELS:
            spec = load_catalog(tmp_path).get(model)
            options = JobOptions(segment_seconds=0.7, clips_per_segment=2)
            exact = plan_for(spec, options, times, duration)
            assert plan_for(spec, options, scan.frame_times, scan.duration) == exact
            assert plan_for_scan(spec, options, scan) == exact


def test_a_stream_without_timestamps_counts_frames_at_the_exact_rate(tmp_path: Path) -> None:
    path = write_video(tmp_path / "raw.h264", seconds=2, fps=25, width=64, height=48)
    scan = scan_video(path, ALLOWED)
    assert scan.source == "frames"
    times, _ = scan_timeline(scan)
    assert times == tuple(Fraction(i, 25) for i in range(len(scan.frame_times)))
    # Had the stream no pts at an NTSC rate, frames are i * 1001/30000 s, read from the float rate.
    ntsc = replace(scan, frame_pts=(None,) * 60, frame_times=tuple(i / 29.97002997002997 for i in range(60)))
    ntsc = replace(ntsc, fps=float(Fraction(30000, 1001)))
    assert scan_timeline(ntsc)[0] == tuple(Fraction(i * 1001, 30000) for i in range(60))


def test_segment_bounds_do_not_accumulate_float_error() -> None:
    bounds = segment_bounds(1.0, start=0.0, end=None, segment_seconds=0.1, stride_seconds=0.1)
    assert len(bounds) == 10
    assert bounds[3] == (Fraction(3, 10), Fraction(2, 5))  # not 3 * 0.1 == 0.30000000000000004
    assert [float(a) for a, _ in bounds] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def test_as_fraction_reads_decimals_and_thirds() -> None:
    assert as_fraction(0.1) == Fraction(1, 10)
    assert as_fraction(16 * 4 / 30) == Fraction(32, 15)
    assert as_fraction(2.2 + 1.6) != Fraction(19, 5)  # a different float: not read as 3.8
    assert as_fraction(3.8) == Fraction(19, 5)
    assert as_fraction(29.97002997002997) == Fraction(30000, 1001)
    assert as_fraction(-0.25) == Fraction(-1, 4) and as_fraction(7) == 7
    with pytest.raises(ValueError):
        as_fraction(float("nan"))


@given(x=st.floats(allow_nan=False, allow_infinity=False))
def test_as_fraction_rounds_back_to_the_float(x: float) -> None:
    assert float(as_fraction(x)) == x


@given(
    denominator=st.sampled_from([24, 25, 1000, 12800, 15360, 19200, 30000, 90000, 1_000_000]),
    seconds=st.integers(0, 3 * 3600),
    ticks=st.integers(0, 1_000_000),
)
def test_as_fraction_recovers_tick_times(denominator: int, seconds: int, ticks: int) -> None:
    """float(pts * time_base) reads back as the exact time while denominator**2 * seconds < 4.5e15
    (three hours at 1/90000; 75 minutes at 1/1000000): the bound ``exact_time`` states."""
    assume(denominator**2 * (seconds + 1) < 4.5e15)
    exact = seconds + Fraction(ticks % denominator, denominator)
    assert as_fraction(float(exact)) == exact


def test_as_fraction_past_its_bound_is_why_plans_use_ticks() -> None:
    """At 1/1000000 and 8192 s a simpler fraction rounds to the same float; ``scan_timeline``
    never reads floats where the scan has pts."""
    exact = Fraction(8192000001, 1000000)
    assert as_fraction(float(exact)) != exact and float(as_fraction(float(exact))) == float(exact)
