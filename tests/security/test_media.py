"""Odd, broken and hostile media, each row through the HTTP API and a real worker: every file
ends ``succeeded``, ``failed <code>`` or a 4xx with a code, never a 5xx or a worker crash."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import Service
from tests.media import write_video
from tests.security import hostile_media as hm
from tests.security.outcome import outcome

pytestmark = pytest.mark.anyio

Build = Callable[[Path], Path]


def _clip(**kw: object) -> Build:
    def build(folder: Path) -> Path:
        ext = str(kw.pop("ext", "mp4"))
        return write_video(folder / f"clip.{ext}", **kw)  # type: ignore[arg-type]

    return build


def _mp4(folder: Path, *, faststart: bool = False) -> Path:
    whole = write_video(folder / "whole.mp4", seconds=3.0, fps=25)
    return hm.faststart(whole, folder / "faststart.mp4") if faststart else whole


ROWS: list[tuple[str, Build, str]] = [
    # -- truncated and corrupted
    (
        "truncated-mp4-moov-at-end",
        lambda d: hm.truncated(_mp4(d), d / "cut.mp4", 0.5),
        "415 unsupported_media",
    ),
    (
        "truncated-mp4-faststart",
        lambda d: hm.truncated(_mp4(d, faststart=True), d / "cut.mp4", 0.6),
        "succeeded",
    ),
    (
        "truncated-mkv",
        lambda d: hm.truncated(write_video(d / "w.mkv", seconds=3.0, fps=25), d / "cut.mkv", 0.5),
        "succeeded",
    ),
    (
        "truncated-to-header",
        lambda d: hm.truncated(_mp4(d, faststart=True), d / "cut.mp4", 0.02),
        "415 unsupported_media",
    ),
    # -- hostile sizes and shapes
    # the AVI headers declare 30000x30000 but FFmpeg sizes rawvideo from them as 0x0: unreadable
    ("huge-declared-dimensions", lambda d: hm.huge_declared_avi(d / "huge.avi"), "415 unsupported_media"),
    # the H.264 SPS declares 6144x6144 (over 7680x4320 pixels): refused at open, nothing decoded
    ("huge-declared-dimensions-sps", lambda d: hm.huge_sps_h264(d / "huge.h264"), "413 frame_too_large"),
    ("png-decompression-bomb", lambda d: hm.png_bomb_mov(d / "bomb.mov"), "413 frame_too_large"),
    ("44-streams-mkv", lambda d: hm.many_streams(d / "many.mkv", 44, "matroska"), "415 too_many_streams"),
    ("44-streams-mpegts", lambda d: hm.many_streams(d / "many.ts", 44, "mpegts"), "415 too_many_streams"),
    ("audio-only", lambda d: hm.audio_only(d / "audio.mkv"), "415 no_video_stream"),
    ("gif-not-allowed", lambda d: hm.gif_animation(d / "anim.gif"), "415 format_not_allowed"),
    ("png-image-not-allowed", lambda d: hm.still_png(d / "still.png"), "415 format_not_allowed"),
    ("wav-not-allowed", lambda d: hm.audio_only(d / "audio.wav", fmt="wav"), "415 format_not_allowed"),
    # -- real-world oddities that must work
    ("single-frame", _clip(seconds=1 / 30, fps=30), "succeeded"),
    ("2x2", _clip(seconds=1.0, width=2, height=2), "succeeded"),
    ("rotated-90", _clip(seconds=1.0, rotation=90), "succeeded"),
    ("rotated-180", _clip(seconds=1.0, rotation=180), "succeeded"),
    ("rotated-270", _clip(seconds=1.0, rotation=270, ext="mov"), "succeeded"),
    ("vfr", lambda d: write_video(d / "vfr.mp4", timestamps=hm.vfr_timestamps()), "succeeded"),
    ("10-bit-h264", _clip(seconds=1.0, pix_fmt="yuv420p10le"), "succeeded"),
    ("10-bit-hevc", _clip(seconds=1.0, codec="libx265", pix_fmt="yuv420p10le", ext="mkv"), "succeeded"),
    ("interlaced-mpeg2", lambda d: hm.interlaced_mpeg2(d / "interlaced.mpg"), "succeeded"),
    ("resolution-change", lambda d: hm.resolution_change_h264(d / "switch.h264"), "succeeded"),
    ("portrait-odd-size", _clip(seconds=1.0, width=90, height=160, ext="mkv"), "succeeded"),
]


@pytest.mark.parametrize(("build", "expected"), [pytest.param(b, e, id=i) for i, b, e in ROWS])
async def test_media_row(service: Service, tmp_path: Path, build: Build, expected: str) -> None:
    assert await outcome(service, build(tmp_path)) == expected


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_bit_flipped_files_have_a_deterministic_outcome(
    service: Service, tmp_path: Path, seed: int
) -> None:
    source = write_video(tmp_path / "clean.mkv", seconds=2.0, fps=25)
    flipped = hm.bit_flipped(source, tmp_path / f"flipped{seed}.mkv", seed=seed, flips=40)
    first = await outcome(service, flipped)
    assert await outcome(service, flipped) == first
    assert first == "succeeded" or first.startswith(("failed ", "415 ")), first


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        pytest.param(
            _clip(seconds=4.0),
            "413 video_too_long",
            marks=pytest.mark.settings(max_duration_seconds=2.0),
            id="long",
        ),
        pytest.param(
            _clip(seconds=1.0, width=128, height=96),
            "413 frame_too_large",
            marks=pytest.mark.settings(max_frame_pixels=100 * 100),
            id="pixels",
        ),
        pytest.param(
            lambda d: hm.resolution_change_h264(d / "switch.h264"),
            "failed frame_too_large",
            marks=pytest.mark.settings(max_frame_pixels=128 * 96),
            id="pixels-exceeded-mid-stream",
        ),
        pytest.param(
            lambda d: hm.resolution_change_h264(d / "switch.h264"),
            "succeeded",
            marks=pytest.mark.settings(max_frame_pixels=192 * 144),
            id="pixels-mid-stream-at-limit",
        ),
        pytest.param(
            lambda d: hm.many_streams(d / "two.mkv", 1, "matroska"),
            "415 too_many_streams",
            marks=pytest.mark.settings(max_streams=1),
            id="streams",
        ),
        pytest.param(
            lambda d: hm.many_streams(d / "two.mkv", 1, "matroska"),
            "succeeded",
            marks=pytest.mark.settings(max_streams=2),
            id="streams-at-limit",
        ),
        pytest.param(
            _clip(seconds=1.0),
            "415 format_not_allowed",
            marks=pytest.mark.settings(allowed_formats="matroska,webm"),
            id="format",
        ),
    ],
)
async def test_configured_limits(service: Service, tmp_path: Path, build: Build, expected: str) -> None:
    assert await outcome(service, build(tmp_path)) == expected
