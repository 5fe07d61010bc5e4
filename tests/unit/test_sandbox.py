"""The sandboxed decode child: same clips as decoding in process, coded faults, back-pressure."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from app.analysis.decode import DecodeStats, decode_clips
from app.analysis.decode_sandbox import DecodeSandbox, SandboxLimits, slots_for
from app.analysis.limits import DEFAULT_LIMITS, MediaLimits
from app.analysis.plan import SamplingPlan, make_plan
from app.analysis.prep import FramePrep
from app.analysis.probe import probe_video
from app.analysis.probe_sandbox import ProbeLimits, ProbeSandbox
from app.analysis.scan import scan_video
from app.errors import (
    DecoderCrashed,
    DecoderResourceLimit,
    DecoderTimeout,
    FrameTooLarge,
    ProbeFailed,
    ServiceError,
    Unavailable,
    UnsupportedMedia,
    VideoUnreadable,
)
from app.settings import Settings
from tests.media import write_video
from tests.security import hostile_media as hm

ALLOWED = Settings().allowed_format_list
PREP = FramePrep((0.45, 0.45, 0.45), (0.225, 0.225, 0.225), short_side=40, crop=32)
FRAMES = 6


def plan_of(path: Path) -> SamplingPlan:
    scan = scan_video(path, ALLOWED)
    return make_plan(
        scan.frame_times,
        scan.duration,
        frames=FRAMES,
        clip_seconds=1.0,
        segment_seconds=0.7,
        stride_seconds=0.7,
        clips_per_segment=2,
    )


def in_process(path: Path, prep: FramePrep = PREP) -> tuple[list[np.ndarray], list[list[float]], DecodeStats]:
    scan = scan_video(path, ALLOWED)
    stats = DecodeStats()
    views, times = [], []
    for clip in decode_clips(path, ALLOWED, scan, plan_of(path), prep.prepare_frame, stats=stats):
        out = np.empty(prep.clip_shape(FRAMES), np.float32)
        prep.write_views(clip.frames, out)
        views.append(out)
        times.append(clip.times)
    return views, times, stats


def sandboxed(
    path: Path,
    limits: SandboxLimits | None = None,
    prep: FramePrep = PREP,
    media: MediaLimits = DEFAULT_LIMITS,
) -> tuple[list[np.ndarray], list[list[float]], DecodeStats]:
    with DecodeSandbox(path, ALLOWED, media, prep, FRAMES, limits=limits) as sandbox:
        scan = sandbox.scan()
        assert scan == scan_video(path, ALLOWED)
        sandbox.decode(plan_of(path))
        views, times = [], []
        while (clip := sandbox.next_clip()) is not None:
            views.append(clip.views)
            times.append(clip.times)
        assert sandbox.stats is not None
        return views, times, sandbox.stats


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sandbox")
    stamps = [0.0]
    for i in range(70):
        stamps.append(round(stamps[-1] + (0.02, 0.05, 0.03, 0.01)[i % 4], 5))
    return {
        "cfr25": write_video(folder / "cfr25.mp4", seconds=2.4, fps=25, width=64, height=48),
        "cfr30": write_video(folder / "cfr30.mkv", seconds=2, fps=30, width=48, height=64),
        "vfr": write_video(folder / "vfr.mkv", timestamps=stamps, width=64, height=48),
        "rotated": write_video(folder / "rot.mp4", seconds=1.5, width=64, height=48, rotation=90),
        "odd": write_video(folder / "odd.mkv", seconds=1.5, width=97, height=71, codec="mpeg4"),
    }


@pytest.mark.parametrize("name", ["cfr25", "cfr30", "vfr", "rotated", "odd"])
def test_clips_equal_in_process_decoding(videos: dict[str, Path], name: str) -> None:
    want_views, want_times, want_stats = in_process(videos[name])
    got_views, got_times, got_stats = sandboxed(videos[name], prep=PREP)
    assert got_times == want_times
    assert len(got_views) == len(want_views) == len(plan_of(videos[name]).clips)
    for got, want in zip(got_views, want_views, strict=True):
        assert np.array_equal(got, want)
    assert got_stats == want_stats
    if name == "rotated":
        assert got_stats.rotation == 90


def test_three_crops_come_back_as_three_views(videos: dict[str, Path]) -> None:
    prep = FramePrep(PREP.mean, PREP.std, short_side=40, crop=40, crops=3)
    want_views, _, _ = in_process(videos["cfr25"], prep)
    got_views, _, _ = sandboxed(videos["cfr25"], prep=prep)
    assert got_views[0].shape == (3, 3, FRAMES, 40, 40)
    assert all(np.array_equal(g, w) for g, w in zip(got_views, want_views, strict=True))


def test_coded_media_errors_come_back_as_themselves(videos: dict[str, Path], tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 4096)
    with (
        pytest.raises(VideoUnreadable),
        DecodeSandbox(junk, ALLOWED, DEFAULT_LIMITS, PREP, FRAMES) as sandbox,
    ):
        sandbox.scan()
    with pytest.raises(FrameTooLarge):
        sandboxed(videos["cfr25"], media=MediaLimits(max_frame_pixels=64 * 48 - 1))


def test_a_frame_over_the_size_limit_mid_stream_fails_in_the_child(tmp_path: Path) -> None:
    """The scan passes (64x64 declared), then the decode pass meets the 200x200 frames."""
    path = hm.growing_png_mov(tmp_path / "grows.mov")
    tight = MediaLimits(max_frame_pixels=64 * 64)
    with DecodeSandbox(path, ALLOWED, tight, PREP, FRAMES) as sandbox:
        sandbox.scan()
        sandbox.decode(plan_of(path))
        with pytest.raises(FrameTooLarge, match="limit of 4096 pixels"):
            while sandbox.next_clip() is not None:
                pass


@pytest.mark.parametrize(
    ("fault", "error", "limits"),
    [
        ("segfault", DecoderCrashed, {}),
        ("hang", DecoderTimeout, {"timeout_seconds": 1.5, "timeout_per_video_second": 0.0}),
        ("oom", DecoderResourceLimit, {"memory_bytes": 1024**3}),
    ],
)
@pytest.mark.parametrize("stage", ["scan", "decode"])
def test_injected_faults_are_coded(
    videos: dict[str, Path], fault: str, error: type[ServiceError], limits: dict[str, float], stage: str
) -> None:
    sandbox = SandboxLimits(fault=fault, fault_stage=stage, **limits)  # type: ignore[arg-type]
    with pytest.raises(error) as caught:
        sandboxed(videos["cfr25"], sandbox)
    assert caught.value.code in ("decoder_crashed", "timeout", "resource_limit")
    # A crash or a timeout may be the machine's: retried, the last attempt keeping the code.
    # Running out of memory or CPU time is the file's, under the same limits: not retried.
    assert getattr(caught.value, "retryable", None) is (error is not DecoderResourceLimit)
    assert getattr(caught.value, "keep_code", False) or error is DecoderResourceLimit


def test_waiting_on_a_slow_consumer_is_not_charged(videos: dict[str, Path]) -> None:
    """The child blocks on a full ring while the parent is busy: that is no timeout."""
    limits = SandboxLimits(timeout_per_video_second=0.0, queue_bytes=1)
    with DecodeSandbox(videos["cfr25"], ALLOWED, DEFAULT_LIMITS, PREP, FRAMES, limits=limits) as sandbox:
        assert sandbox.slots == 2
        sandbox.scan()
        sandbox.allowance = sandbox.waited + 1.0  # from now on, 1 s of waiting for the child
        sandbox.decode(plan_of(videos["cfr25"]))
        count = 0
        while (clip := sandbox.next_clip()) is not None:
            count += 1
            assert clip.views.shape == PREP.clip_shape(FRAMES)
            time.sleep(0.3)  # "inference": 2 clips decoded ahead, the child blocks meanwhile
        assert count == len(plan_of(videos["cfr25"]).clips) > 5  # 0.3 s x count > the 1 s allowance


def test_a_closed_sandbox_leaves_no_process(videos: dict[str, Path]) -> None:
    sandbox = DecodeSandbox(videos["cfr25"], ALLOWED, DEFAULT_LIMITS, PREP, FRAMES)
    sandbox.scan()
    sandbox.decode(plan_of(videos["cfr25"]))
    assert sandbox.next_clip() is not None
    proc = sandbox._proc
    sandbox.close()
    assert proc.poll() is not None
    sandbox.close()


def test_ring_size_follows_the_queue_bytes() -> None:
    clip = 3 * FRAMES * 32 * 32 * 4
    assert slots_for(10 * clip, PREP, FRAMES) == 10
    assert slots_for(1, PREP, FRAMES) == 2
    assert slots_for(10**12, PREP, FRAMES) == 32
    with pytest.raises(ValueError, match="unknown decoder fault"):
        SandboxLimits(fault="nope")


# -------------------------------------------------------------- the upload probe's child


@pytest.fixture
def prober() -> Iterator[ProbeSandbox]:
    sandbox = ProbeSandbox()
    yield sandbox
    sandbox.close()


def test_the_probe_child_answers_as_the_in_process_probe(
    videos: dict[str, Path], tmp_path: Path, prober: ProbeSandbox
) -> None:
    for name in ("cfr25", "rotated", "odd"):  # the later ones are probed by the spare child
        path = videos[name]
        want = probe_video(path, filename=path.name, allowed_formats=ALLOWED)
        assert prober.probe_video(path, filename=path.name, allowed_formats=ALLOWED) == want
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 4096)
    with pytest.raises(UnsupportedMedia) as caught:
        prober.probe_video(junk, filename="junk.mp4", allowed_formats=ALLOWED)
    assert type(caught.value) is UnsupportedMedia
    with pytest.raises(FrameTooLarge):
        tiny = MediaLimits(max_frame_pixels=64 * 48 - 1)
        prober.probe_video(videos["cfr25"], filename="x", allowed_formats=ALLOWED, limits=tiny)


@pytest.mark.parametrize(
    ("fault", "limits", "code", "detail"),
    [
        ("segfault", {}, "probe_failed", "SIGSEGV"),
        ("hang", {"timeout_seconds": 1.0}, "probe_timeout", "longer than 1 s"),
        ("oom", {"memory_bytes": 1024**3}, "probe_failed", "resource_limit"),
    ],
)
def test_injected_probe_faults_are_coded_request_errors(
    videos: dict[str, Path], fault: str, limits: dict[str, float], code: str, detail: str
) -> None:
    prober = ProbeSandbox(ProbeLimits(fault=fault, **limits))  # type: ignore[arg-type]
    try:
        with pytest.raises(ProbeFailed, match=detail) as caught:
            prober.probe_video(videos["cfr25"], filename="x.mp4", allowed_formats=ALLOWED)
        assert caught.value.code == code
    finally:
        prober.close()


def waiting_spare(prober: ProbeSandbox) -> subprocess.Popen[bytes]:
    """The process of the spare child waiting for the next upload."""
    spares = prober._spares._spares
    assert len(spares) == 1
    return spares[0].result().proc


def test_a_spare_that_died_waiting_costs_the_upload_nothing(
    videos: dict[str, Path], prober: ProbeSandbox
) -> None:
    path = videos["cfr25"]
    want = prober.probe_video(path, filename=path.name, allowed_formats=ALLOWED)
    spare = waiting_spare(prober)
    spare.kill()
    spare.wait()
    assert prober.probe_video(path, filename=path.name, allowed_formats=ALLOWED) == want


def test_a_closed_prober_leaves_no_process(videos: dict[str, Path]) -> None:
    prober = ProbeSandbox()
    prober.warm()  # what the API's start-up does
    proc = waiting_spare(prober)
    assert prober.probe_video(videos["cfr25"], filename="x.mp4", allowed_formats=ALLOWED).width == 64
    assert proc.poll() is not None, "the spare probed that upload, and only that one"
    proc = waiting_spare(prober)
    assert proc.poll() is None, "a new spare child waits for the next upload"
    prober.close()
    assert proc.poll() is not None
    with pytest.raises(Unavailable):
        prober.probe_video(videos["cfr25"], filename="x.mp4", allowed_formats=ALLOWED)
    with pytest.raises(ValueError, match="unknown probe fault"):
        ProbeLimits(fault="nope")
