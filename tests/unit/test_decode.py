"""Real PyAV decoding: generated videos, the committed corpus and the shared corpus."""

from __future__ import annotations

import csv
import weakref
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from app.analysis.decode import DecodedClip, DecodeStats, decode_clips
from app.analysis.limits import MediaLimits
from app.analysis.plan import SamplingPlan, make_plan
from app.analysis.scan import VideoScan, scan_video
from app.errors import FrameTooLarge, NoFrames, ServiceError, VideoUnreadable
from app.settings import Settings
from tests.media import write_video
from tests.security import hostile_media as hm

ALLOWED = Settings().allowed_format_list
DATA = Path(__file__).resolve().parent.parent / "data"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "videos"
CLEAN_CODES = {"video_unreadable", "no_frames"}


def index_frame(index: int, t: float, width: int, height: int) -> np.ndarray:
    """Flat grey halves encoding the frame index in base 16 (robust to lossy coding)."""
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[:, : width // 2] = (index % 16) * 16 + 8
    img[:, width // 2 :] = (index // 16 % 16) * 16 + 8
    return img


def shows_frame(rgb: np.ndarray, index: int) -> bool:
    width = rgb.shape[1]
    low = round((float(np.median(rgb[:, : width // 2 - 4])) - 8) / 16)
    high = round((float(np.median(rgb[:, width // 2 + 4 :])) - 8) / 16)
    return bool(low + 16 * high == index % 256)


def run(
    path: Path,
    *,
    frames: int = 8,
    clip_seconds: float = 1.0,
    segment: float = 1.0,
    k: int = 1,
    threads: int = 0,
) -> tuple[VideoScan, SamplingPlan, list[DecodedClip[np.ndarray]], DecodeStats]:
    """Plan and decode ``path`` (RGB frames unchanged); every planned clip must come out."""
    scan = scan_video(path, ALLOWED)
    plan = make_plan(
        scan.frame_times,
        scan.duration,
        frames=frames,
        clip_seconds=clip_seconds,
        segment_seconds=segment,
        stride_seconds=segment,
        clips_per_segment=k,
    )
    stats = DecodeStats()
    clips = list(decode_clips(path, ALLOWED, scan, plan, lambda rgb: rgb, threads=threads, stats=stats))
    assert len(clips) == len(plan.clips)
    return scan, plan, clips, stats


@pytest.mark.parametrize("fps", [Fraction(30), Fraction(25), Fraction(60), Fraction(24000, 1001)], ids=str)
def test_constant_rate_frames_are_the_planned_ones(tmp_path: Path, fps: Fraction) -> None:
    path = write_video(tmp_path / "cfr.mp4", seconds=3, fps=fps, width=64, height=48, frame_fn=index_frame)
    scan, plan, clips, stats = run(path, frames=8, clip_seconds=8 * 8 / 30, k=2)
    assert scan.frame_times == pytest.approx([float(i / fps) for i in range(len(scan.frame_times))], abs=1e-4)
    assert stats.substituted == 0 and stats.errors == 0
    assert stats.converted == len(plan.needed_frames)
    for clip in clips:
        assert all(shows_frame(f, i) for f, i in zip(clip.frames, clip.plan.frames, strict=True))
        assert clip.times == [scan.frame_times[i] for i in clip.plan.frames]
    assert [max(c.plan.frames) for c in clips] == sorted(max(c.plan.frames) for c in clips)


def test_variable_rate_times_follow_the_timestamps(tmp_path: Path) -> None:
    stamps = [0.0]
    for i in range(120):
        stamps.append(stamps[-1] + (0.01, 0.04, 0.1, 0.033)[i % 4])
    path = write_video(tmp_path / "vfr.mp4", timestamps=stamps, width=64, height=48, frame_fn=index_frame)
    scan, _, clips, stats = run(path, frames=13, clip_seconds=13 * 6 / 30, segment=0.8)
    assert scan.frame_times == pytest.approx(stamps, abs=1e-4)
    assert stats.substituted == 0
    for clip in clips:
        assert all(shows_frame(f, i) for f, i in zip(clip.frames, clip.plan.frames, strict=True))
        assert all(clip.plan.window_start <= t < clip.plan.window_end for t in clip.times)


def test_raw_stream_without_packet_timestamps_falls_back_to_decoding(tmp_path: Path) -> None:
    path = write_video(tmp_path / "raw.h264", seconds=2, fps=25, width=64, height=48, frame_fn=index_frame)
    scan, _, clips, stats = run(path)
    assert scan.source == "frames" and len(scan.frame_times) == 50
    assert scan.frame_times == pytest.approx([i / 25 for i in range(50)], abs=1e-6)
    assert stats.substituted == 0
    for clip in clips:
        assert all(shows_frame(f, i) for f, i in zip(clip.frames, clip.plan.frames, strict=True))


@pytest.mark.parametrize("name", ["cfr25.mp4", "vfr.mkv"])
def test_matches_pytorchvideo_encoded_video(tmp_path: Path, name: str) -> None:
    """Same frames as PyTorchVideo's own decoder: get_clip(window) then UniformTemporalSubsample."""
    from pytorchvideo.data.encoded_video import EncodedVideo

    stamps = [round(i * 0.037 + (i % 3) * 0.011, 4) for i in range(90)] if "vfr" in name else None
    path = write_video(tmp_path / name, seconds=3, fps=25, timestamps=stamps, width=48, height=32)
    _, _, clips, _ = run(path, frames=13, clip_seconds=2.6, segment=0.9, k=2)
    reference = EncodedVideo.from_path(str(path), decode_audio=False, decoder="pyav")
    for clip in clips:
        video = reference.get_clip(clip.plan.window_start, clip.plan.window_end)["video"]
        n = video.shape[1]
        pick = torch.linspace(0, n - 1, 13).clamp(0, n - 1).long()
        expected = video[:, pick].permute(1, 2, 3, 0).numpy().astype(np.uint8)
        assert np.array_equal(np.stack(clip.frames), expected)


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_is_undone(tmp_path: Path, rotation: int) -> None:
    """Display matrix degrees are counter-clockwise (PyAV); np.rot90 turns the same way."""
    plain = write_video(tmp_path / "plain.mp4", seconds=0.5, width=64, height=48)
    turned = write_video(tmp_path / "turned.mp4", seconds=0.5, width=64, height=48, rotation=rotation)
    _, _, plain_clips, _ = run(plain)
    _, _, turned_clips, stats = run(turned)
    assert stats.rotation == rotation
    for a, b in zip(plain_clips[0].frames, turned_clips[0].frames, strict=True):
        assert np.array_equal(b, np.rot90(a, k=rotation // 90))


def test_decord_rotated_phone_video_comes_out_portrait() -> None:
    """decord_video_90.mov (display matrix -90) shows a keyboard; rotated clockwise its keys read upright
    (checked by eye). Its coded frames are 568x320 landscape, so upright means portrait."""
    _, _, clips, stats = run(DATA / "decord_video_90.mov")
    assert stats.rotation == 270
    assert clips[0].frames[0].shape == (568, 320, 3)
    _, _, plain, _ = run(DATA / "decord_video_0.mov")
    assert plain[0].frames[0].shape == (320, 568, 3)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"width": 97, "height": 71, "codec": "mpeg4"},
        {"width": 97, "height": 71, "pix_fmt": "yuv444p"},
        {"pix_fmt": "yuv420p10le"},
    ],
    ids=["odd-mpeg4", "odd-yuv444", "10bit"],
)
def test_odd_sizes_and_ten_bit(tmp_path: Path, kwargs: dict[str, object]) -> None:
    path = write_video(tmp_path / "v.mkv", seconds=1, frame_fn=index_frame, **kwargs)  # type: ignore[arg-type]
    scan, _, clips, _ = run(path)
    height, width = int(kwargs.get("height", 96)), int(kwargs.get("width", 128))  # type: ignore[call-overload]
    frame = clips[0].frames[0]
    assert frame.shape == (height, width, 3) and frame.dtype == np.uint8
    assert scan.pix_fmt == kwargs.get("pix_fmt", "yuv420p")
    assert shows_frame(frame, clips[0].plan.frames[0])


def test_memory_is_bounded_by_clips_in_flight(tmp_path: Path) -> None:
    path = write_video(tmp_path / "long.mp4", seconds=20, fps=30, width=32, height=32)
    scan = scan_video(path, ALLOWED)
    plan = make_plan(
        scan.frame_times, scan.duration, frames=13, clip_seconds=2.6, segment_seconds=2.5, stride_seconds=2.5
    )

    class Frame:
        pass

    alive: weakref.WeakSet[Frame] = weakref.WeakSet()

    def prepare(rgb: np.ndarray) -> Frame:
        obj = Frame()
        alive.add(obj)
        return obj

    peak = 0
    for clip in decode_clips(path, ALLOWED, scan, plan, prepare):
        del clip
        peak = max(peak, len(alive))
    assert len(plan.needed_frames) > 90
    assert peak <= 2 * 13 + 10


def test_corrupt_middle_keeps_what_decoded(tmp_path: Path) -> None:
    """Packets still demux (the sample table is intact) but their payload is garbage."""
    path = write_video(tmp_path / "v.mp4", seconds=4, fps=25, width=64, height=48)
    data = bytearray(path.read_bytes())
    rnd = np.random.default_rng(0)
    third = len(data) // 3
    data[third : len(data) // 2] = rnd.integers(0, 256, len(data) // 2 - third, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    scan, plan, clips, stats = run(path)
    assert stats.errors > 0 and stats.substituted > 0 and 0 < stats.decoded < len(scan.frame_times)
    assert all(len(c.frames) == 8 for c in clips) and len(clips) == len(plan.clips)


@pytest.mark.parametrize(
    ("build", "name", "limit", "sizes"),
    [
        (hm.resolution_change_h264, "grows.h264", 128 * 96, {(128, 96), (192, 144)}),  # new size on ctx
        (hm.growing_png_mov, "grows.mov", 64 * 64, {(64, 64), (200, 200)}),  # EINVAL, ctx reset to 0x0
    ],
    ids=["h264-new-sps", "png-bigger-frame"],
)
def test_a_frame_over_the_size_limit_mid_stream_fails_the_decode(
    tmp_path: Path, build: Callable[[Path], Path], name: str, limit: int, sizes: set[tuple[int, int]]
) -> None:
    """The size cap refuses the bigger frames inside FFmpeg; that is FrameTooLarge, not a
    bad packet to skip (which would analyse the first half only)."""
    path = build(tmp_path / name)
    tight = MediaLimits(max_frame_pixels=limit)
    scan, plan, _, stats = run(path, frames=4)
    assert stats.sizes == sizes and stats.errors == 0
    with pytest.raises(FrameTooLarge):
        list(decode_clips(path, ALLOWED, scan, plan, lambda rgb: rgb, limits=tight))
    if scan.source == "frames":  # no packet timestamps: the scan decodes, and is held to it too
        with pytest.raises(FrameTooLarge):
            scan_video(path, ALLOWED, tight)


def test_the_scan_by_decoding_is_held_to_the_size_limit(tmp_path: Path) -> None:
    path = hm.resolution_change_h264(tmp_path / "switch.h264")
    assert scan_video(path, ALLOWED).source == "frames"
    with pytest.raises(FrameTooLarge):
        scan_video(path, ALLOWED, MediaLimits(max_frame_pixels=128 * 96))


def test_not_a_video_and_no_frames_are_coded_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 4096)
    with pytest.raises(VideoUnreadable):
        scan_video(junk, ALLOWED)
    with pytest.raises(NoFrames):
        scan_video(DATA / "small_mp4-with-audio.mp4", ALLOWED)
    with pytest.raises(NoFrames):
        scan_video(DATA / "mp4parse_bipbop_nonfragment_header.mp4", ALLOWED)


def corpus() -> list[Path]:
    files = sorted(p for p in DATA.iterdir() if p.suffix != ".md")
    manifest = SHARED / "MANIFEST.tsv"
    if manifest.is_file():
        with manifest.open(newline="") as fh:
            files += [SHARED / row["file_name"] for row in csv.DictReader(fh, delimiter="\t")]
    else:
        files.append(manifest)  # one test that skips, saying the shared corpus is absent
    return files


@pytest.mark.parametrize("path", corpus(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_file_decodes_or_fails_cleanly(path: Path) -> None:
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    try:
        scan, plan, clips, _ = run(path, frames=8, clip_seconds=2.133, segment=2.0)
    except ServiceError as exc:
        assert exc.code in CLEAN_CODES, exc
        return
    assert scan.duration > 0 and plan.segments[-1].end == pytest.approx(scan.duration)
    for clip in clips:
        assert len(clip.frames) == 8
        assert all(f.dtype == np.uint8 and f.ndim == 3 and f.shape[2] == 3 for f in clip.frames)
