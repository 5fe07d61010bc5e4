"""The decode, exact as a full decode: skipping unsampled non-reference frames, and splitting
the video at keyframes between passes (``decode_split``), on real files with B-frames.

The reference is every frame decoded in order, nothing skipped, one thread: each sampled
frame must be that frame, pixel for pixel, at its time. A split decode must also give the
clips of the one-pass decode exactly (same frames, times and substitutions, segment by segment).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from app.analysis.decode import DecodedClip, DecodeStats, decode_clips, frame_to_rgb
from app.analysis.decode_split import DecodePart, split_plan
from app.analysis.plan import SamplingPlan, make_plan
from app.analysis.scan import VideoScan, open_video, scan_video
from app.errors import ServiceError
from tests.media import write_video
from tests.unit.test_decode import ALLOWED, CLEAN_CODES, corpus

Clips = dict[tuple[int, int], DecodedClip[np.ndarray]]

GENERATED = {
    # name: (codec, seconds, encoder options); 96x64 at 30 fps
    "h264_b3_gop37": ("libx264", 12.0, {"bf": "3", "g": "37", "keyint_min": "37", "sc_threshold": "0"}),
    "h264_open_gop": ("libx264", 12.0, {"bf": "3", "g": "45", "x264-params": "open-gop=1"}),
    "h264_b_pyramid_gop23": ("libx264", 9.0, {"bf": "5", "g": "23", "x264-params": "b-pyramid=normal"}),
    "h264_keyframes_far_apart": ("libx264", 12.0, {"bf": "3", "g": "250", "keyint_min": "250"}),
    "h264_one_keyframe": ("libx264", 8.0, {"bf": "3", "g": "1000", "keyint_min": "1000"}),
    "hevc_b_frames": ("libx265", 8.0, {"x265-params": "bframes=4:keyint=41:min-keyint=41:log-level=error"}),
    "mpeg4_b_frames": ("mpeg4", 8.0, {"bf": "2", "g": "29"}),
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("split")
    out = {}
    for name, (codec, seconds, options) in GENERATED.items():
        suffix = ".mkv" if codec == "mpeg4" else ".mp4"
        out[name] = write_video(
            folder / f"{name}{suffix}",
            seconds=seconds,
            fps=30,
            width=96,
            height=64,
            codec=codec,
            options=options,
        )
    return out


def plan_for(
    scan: VideoScan, frames: int = 8, clip_seconds: float = 2.133, segment: float = 2.0
) -> SamplingPlan:
    return make_plan(
        scan.frame_times,
        scan.duration,
        frames=frames,
        clip_seconds=clip_seconds,
        segment_seconds=segment,
        stride_seconds=segment,
    )


def one_pass(path: Path, scan: VideoScan, plan: SamplingPlan, threads: int = 0) -> tuple[Clips, DecodeStats]:
    stats = DecodeStats()
    clips = decode_clips(path, ALLOWED, scan, plan, lambda rgb: rgb, threads=threads, stats=stats)
    return {(c.plan.segment, c.plan.index): c for c in clips}, stats


def split_passes(
    path: Path, scan: VideoScan, parts: tuple[DecodePart, ...], threads: int = 0
) -> tuple[Clips, DecodeStats]:
    out: Clips = {}
    stats = []
    for part in parts:
        got, part_stats = {}, DecodeStats()
        for clip in decode_clips(
            path,
            ALLOWED,
            scan,
            part.plan,
            lambda rgb: rgb,
            threads=threads,
            stats=part_stats,
            start_pts=part.start_pts,
        ):
            got[(clip.plan.segment, clip.plan.index)] = clip
        assert list(got) == [(c.segment, c.index) for c in part.plan.clips], "in plan order"
        out.update(got)
        stats.append(part_stats)
    return out, DecodeStats.merged(stats)


def full_decode(path: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    """RGB of the frames with these pts, decoding every frame in order (no skipping, 1 thread)."""
    found = {}
    with open_video(path, ALLOWED) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except (av.FFmpegError, ValueError):
                continue
            for frame in frames:
                if frame.pts is not None and int(frame.pts) in wanted and int(frame.pts) not in found:
                    found[int(frame.pts)] = frame_to_rgb(frame)
    return found


def assert_same_clips(got: Clips, want: Clips) -> None:
    assert list(sorted(got)) == list(sorted(want))
    for key, clip in want.items():
        assert got[key].times == clip.times, key
        for a, b in zip(got[key].frames, clip.frames, strict=True):
            assert np.array_equal(a, b), key


def check_against_full_decode(path: Path, scan: VideoScan, clips: Clips, stats: DecodeStats) -> None:
    pts = scan.frame_pts
    wanted = {p for clip in clips.values() for i in clip.plan.frames if (p := pts[i]) is not None}
    reference = full_decode(path, wanted)
    checked = 0
    for clip in clips.values():
        for index, frame, time in zip(clip.plan.frames, clip.frames, clip.times, strict=True):
            key = pts[index]
            if key is None or key not in reference:  # never decodes: substituted alike
                continue
            assert time == scan.frame_times[index]
            assert np.array_equal(frame, reference[key]), (path.name, index)
            checked += 1
    assert checked or stats.substituted


@pytest.mark.parametrize("name", list(GENERATED))
def test_exact_skip_gives_the_frames_of_a_full_decode(generated: dict[str, Path], name: str) -> None:
    path = generated[name]
    scan = scan_video(path, ALLOWED)
    plan = plan_for(scan)
    clips, stats = one_pass(path, scan, plan)
    check_against_full_decode(path, scan, clips, stats)
    assert stats.substituted == 0 and stats.errors == 0
    if name.startswith("h264"):
        assert stats.decoded < len(scan.frame_times), "unsampled non-reference frames are skipped"


@pytest.mark.parametrize("name", list(GENERATED))
@pytest.mark.parametrize("parts", [2, 3])
def test_split_decode_gives_the_clips_of_one_pass(generated: dict[str, Path], name: str, parts: int) -> None:
    path = generated[name]
    scan = scan_video(path, ALLOWED)
    plan = plan_for(scan)
    cut = split_plan(scan, plan, parts, min_part_seconds=0.0)
    if name == "h264_one_keyframe":
        assert len(cut) == 1 and cut[0].start_pts is None
    else:
        assert len(cut) >= 2, "every generated video but one has keyframes to cut at"
    want, want_stats = one_pass(path, scan, plan)
    got, got_stats = split_passes(path, scan, cut)
    assert_same_clips(got, want)
    assert got_stats.substituted == want_stats.substituted == 0
    check_against_full_decode(path, scan, got, got_stats)


def test_a_far_keyframe_makes_an_uneven_cut(generated: dict[str, Path]) -> None:
    """Keyframes at 0 and 8.3 s of 12 s: the only cut is there, the parts as they fall."""
    scan = scan_video(generated["h264_keyframes_far_apart"], ALLOWED)
    assert scan.keyframes == (0, 250)
    cut = split_plan(scan, plan_for(scan), 2, min_part_seconds=0.0)
    assert [p.first_frame for p in cut] == [0, 250]
    assert cut[1].start_pts == scan.frame_pts[250]
    assert split_plan(scan, plan_for(scan), 2, min_part_seconds=4.0)[0].plan == plan_for(scan)


@pytest.mark.parametrize("path", corpus(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_exact_and_split_decodes_equal_the_full_decode(path: Path) -> None:
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    try:
        scan = scan_video(path, ALLOWED)
        plan = plan_for(scan, frames=8, clip_seconds=1.0, segment=1.0)
        want, stats = one_pass(path, scan, plan, threads=1)
    except ServiceError as exc:
        assert exc.code in CLEAN_CODES, exc
        return
    check_against_full_decode(path, scan, want, stats)
    cut = split_plan(scan, plan, 2, min_part_seconds=0.0)
    # one thread in both: frame threading conceals a damaged (fuzzed) stream's errors differently
    got, got_stats = split_passes(path, scan, cut, threads=1)
    assert_same_clips(got, want)
    assert got_stats.substituted == stats.substituted


def test_the_plan_is_cut_at_keyframes_into_whole_segments(generated: dict[str, Path]) -> None:
    scan = scan_video(generated["h264_b3_gop37"], ALLOWED)
    plan = plan_for(scan, frames=4, clip_seconds=1.6, segment=1.5)
    cut = split_plan(scan, plan, 3, min_part_seconds=0.0)
    assert len(cut) == 3
    assert cut[0].start_pts is None and cut[0].first_frame == 0
    for part in cut[1:]:
        assert part.first_frame in scan.keyframes and part.start_pts == scan.frame_pts[part.first_frame]
    segments = [s.index for part in cut for s in part.plan.segments]
    assert segments == [s.index for s in plan.segments], "each segment whole, in one part, in order"
    for part in cut:
        frames = [i for clip in part.plan.clips for i in clip.frames]
        assert part.first_frame <= min(frames) and max(frames) == part.last_frame
    spans = [p.last_frame - p.first_frame for p in cut]
    assert max(spans) < 0.5 * len(scan.frame_times), "about a third each"


def test_no_cut_where_parts_would_be_short_or_nothing_is_known() -> None:
    times = tuple(i / 30 for i in range(900))
    base = {
        "frame_times": times,
        "frame_pts": tuple(range(900)),
        "duration": 30.0,
        "width": 64,
        "height": 48,
        "fps": 30.0,
        "codec": "h264",
        "pix_fmt": "yuv420p",
        "time_base": Fraction(1, 30),
        "start_pts": 0,
        "source": "packets",
    }
    scan = VideoScan(**base, keyframes=tuple(range(0, 900, 60)))  # type: ignore[arg-type]
    plan = plan_for(scan)
    assert len(split_plan(scan, plan, 2)) == 2, "two parts of ~15 s"
    assert len(split_plan(scan, plan, 4)) == 2, "not four of 7.5 s: as many as are >= 10 s"
    assert len(split_plan(scan, plan, 2, min_part_seconds=16.0)) == 1
    assert len(split_plan(scan, plan, 1)) == 1
    decoded = VideoScan(**{**base, "source": "frames"})  # type: ignore[arg-type]
    assert split_plan(decoded, plan, 2) == (DecodePart(plan, None, 0, 899),)
    late = make_plan(
        times, 30.0, frames=8, clip_seconds=2.0, segment_seconds=2.0, stride_seconds=2.0, start=20.0
    )
    assert len(split_plan(scan, late, 2, min_part_seconds=0.0)) == 2, "cut inside what is decoded"


def test_a_start_the_container_cannot_seek_to_reads_from_the_beginning(generated: dict[str, Path]) -> None:
    """No keyframe at or before the start (a pts before the stream's first): the pass
    falls back to the beginning and still gives the plan's clips exactly."""
    path = generated["h264_b3_gop37"]
    scan = scan_video(path, ALLOWED)
    plan = plan_for(scan)
    want, _ = one_pass(path, scan, plan)
    got: Clips = {}
    stats = DecodeStats()
    for clip in decode_clips(path, ALLOWED, scan, plan, lambda rgb: rgb, stats=stats, start_pts=-(10**9)):
        got[(clip.plan.segment, clip.plan.index)] = clip
    assert_same_clips(got, want)
    assert stats.substituted == 0
