"""Skipping unneeded non-reference frames changes no clip (H.264 with B-frames, frame threads)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from app.analysis.decode import frame_to_rgb
from tests.media import write_video
from tests.unit.test_decode import run


def every_frame(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        frames = {int(f.pts): frame_to_rgb(f) for f in container.decode(video=0)}
    return [frames[pts] for pts in sorted(frames)]


@pytest.fixture(scope="module")
def bframes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    options = {"preset": "fast", "bf": "3", "g": "48"}
    return write_video(
        tmp_path_factory.mktemp("skip") / "b.mp4", seconds=6, fps=30, width=96, height=64, options=options
    )


@pytest.mark.parametrize("threads", [0, 1, 3])
@pytest.mark.parametrize(
    ("frames", "clip_seconds", "segment"), [(4, 1.6, 1.5), (13, 2.6, 2.5), (32, 2.133, 2.0)]
)
def test_clips_equal_a_full_decode(
    bframes: Path, threads: int, frames: int, clip_seconds: float, segment: float
) -> None:
    scan, plan, clips, stats = run(
        bframes, frames=frames, clip_seconds=clip_seconds, segment=segment, threads=threads
    )
    reference = every_frame(bframes)
    for clip in clips:
        for frame, index in zip(clip.frames, clip.plan.frames, strict=True):
            assert np.array_equal(frame, reference[index])
    assert stats.substituted == 0 and stats.errors == 0
    assert stats.converted == len(plan.needed_frames)
    if len(plan.needed_frames) < len(scan.frame_times) / 2:
        assert stats.decoded < len(scan.frame_times), "unneeded non-reference frames are skipped"
