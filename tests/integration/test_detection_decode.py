"""A detection job's decode on real files: rotated videos give keyframes and clips in display
orientation (so boxes in display coordinates land on the right thing), the sandboxed and the
in-process decoders agree, and SlowFast (two pathways, input list) runs with the boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.analysis.catalog import load_catalog
from app.analysis.decode_sandbox import SandboxLimits
from app.analysis.detection_decode import scan_for_detection, start_detection_decode
from app.analysis.detection_plan import plan_for_detection_scan
from app.analysis.detection_prep import to_clip_pixels
from app.analysis.limits import DEFAULT_LIMITS
from app.options import JobOptions
from tests.conftest import write_zoo_checkpoint
from tests.media import write_video

FORMATS = ("mov,mp4,m4a,3gp,3g2,mj2",)
SPEC = load_catalog(Path("/nonexistent")).get("slow_r50_detection")
BRIGHT = (1.0 - 0.45) / 0.225  # a white pixel after AVA's normalisation


def square(index: int, t: float, width: int, height: int) -> np.ndarray:
    """A dark frame with a white square in the top-left quarter (the "person")."""
    img = np.full((height, width, 3), 20, np.uint8)
    img[8:40, 12:44] = 255
    return img


def keyframes_of(path: Path, sandboxed: bool) -> list[tuple[int, np.ndarray, np.ndarray]]:
    sandbox = SandboxLimits() if sandboxed else None
    scan = scan_for_detection(path, FORMATS, DEFAULT_LIMITS, sandbox)
    plan = plan_for_detection_scan(SPEC, JobOptions(), scan, limit=100)
    clips, stop = start_detection_decode(path, FORMATS, DEFAULT_LIMITS, sandbox, 0, SPEC, scan, plan)
    try:
        got = list(clips)
    finally:
        stats = stop()
    assert stats is not None and stats.decoded > 0 and len(got) == len(plan)
    return got


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_files_give_display_oriented_keyframes_and_boxes_on_the_object(
    tmp_path: Path, rotation: int
) -> None:
    plain = write_video(tmp_path / "plain.mp4", seconds=2.0, width=128, height=96, frame_fn=square)
    turned = write_video(
        tmp_path / "turned.mp4", seconds=2.0, width=128, height=96, frame_fn=square, rotation=rotation
    )
    reference = keyframes_of(plain, sandboxed=True)
    for (index, clip, key), (_, _, plain_key) in zip(keyframes_of(turned, True), reference, strict=True):
        assert np.array_equal(key, np.rot90(plain_key, k=rotation // 90)), index
        ys, xs = np.nonzero(key[..., 0] > 200)  # where the square is shown
        height, width = key.shape[:2]
        box = (xs.min() / width, ys.min() / height, (xs.max() + 1) / width, (ys.max() + 1) / height)
        x1, y1, x2, y2 = (round(v) for v in to_clip_pixels(box, clip.shape[2], clip.shape[3]))
        inside = clip[:, SPEC.frames // 2, y1 + 2 : y2 - 2, x1 + 2 : x2 - 2]
        assert inside.size and np.allclose(inside, BRIGHT, atol=0.1)
        outside = np.ones(clip.shape[2:], bool)
        outside[max(0, y1 - 2) : y2 + 2, max(0, x1 - 2) : x2 + 2] = False
        assert clip[0, SPEC.frames // 2][outside].max() < 0


def test_sandboxed_and_in_process_decoders_agree(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4", seconds=3.0, width=160, height=90)
    for (i, clip_a, key_a), (j, clip_b, key_b) in zip(
        keyframes_of(video, True), keyframes_of(video, False), strict=True
    ):
        assert i == j and np.array_equal(key_a, key_b) and np.array_equal(clip_a, clip_b)


def test_slowfast_detection_runs_on_boxes(tmp_path: Path) -> None:
    from app.analysis.engine import Analyzer

    models = tmp_path / "models"
    models.mkdir()
    write_zoo_checkpoint(models, "slowfast_r50_detection", "SLOWFAST_8x8_R50_DETECTION.pyth")
    video = write_video(tmp_path / "clip.mp4", seconds=2.0, width=128, height=96)
    analyzer = Analyzer(models_dir=models, allowed_formats=FORMATS, decode_in_subprocess=False)
    boxes = [{"time": 1.0, "boxes": [[0.1, 0.2, 0.5, 0.9], [0.5, 0.2, 0.9, 0.9]]}]
    result = analyzer.analyze(
        video, "slowfast_r50_detection", JobOptions(boxes=boxes, min_score=0.0, top_k=3)
    )
    doc = result.to_dict()
    assert doc["task"] == "detection" and doc["keyframes"] == [1.0]
    assert [d["box"] for d in doc["detections"]] == boxes[0]["boxes"]
    assert [d["track_id"] for d in doc["detections"]] == [1, 2]
    for found in doc["detections"]:
        assert len(found["labels"]) == 3 and all(0 <= lab["score"] <= 1 for lab in found["labels"])
