"""People's boxes on the annotated video: where each track's box is between keyframes, and the
rendered MP4 (real PyAV decode and encode) showing each box in its track's colour on the right
object, a rotated file included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from app.analysis.annotate import colour, render
from app.analysis.box_overlay import BoxOverlay
from app.analysis.decode import frame_to_rgb
from app.demo.detection_scene import rotate_box, write_detection_video
from app.settings import Settings


def detection(t: float, box: tuple[float, ...], track: int, label: str = "static") -> dict[str, Any]:
    return {
        "time": t,
        "box": list(box),
        "person_score": 0.9,
        "track_id": track,
        "labels": [{"label": label, "class_id": 5, "score": 0.8}],
    }


def test_boxes_move_between_keyframes_and_stay_half_a_gap_beyond() -> None:
    overlay = BoxOverlay(
        [
            detection(0.5, (0.1, 0.1, 0.3, 0.3), 1),
            detection(1.5, (0.3, 0.1, 0.5, 0.3), 1, "moving right"),
            detection(0.5, (0.6, 0.6, 0.8, 0.8), 2),
        ],
        colour,
    )
    at_1 = {s.track_id: s for s in overlay.shown_at(1.0)}
    assert at_1[1].box == pytest.approx((0.2, 0.1, 0.4, 0.3))
    assert 2 in at_1 and 2 not in {s.track_id for s in overlay.shown_at(1.1)}, "half a gap, no more"
    assert overlay.shown_at(1.2)[0].text == "#1 moving right 80%", "the nearer keyframe's labels"
    assert {s.track_id for s in overlay.shown_at(0.1)} == {1, 2}
    assert overlay.shown_at(2.1) == []


def test_far_apart_keyframes_are_not_bridged() -> None:
    overlay = BoxOverlay(
        [detection(t, (0.1, 0.1, 0.2, 0.2), 1) for t in (0.5, 1.5, 2.5)]
        + [detection(6.5, (0.5, 0.5, 0.6, 0.6), 1)],
        colour,
    )
    assert overlay.shown_at(4.5) == [], "a track lost for 4 s is not drawn across the gap"


@pytest.mark.parametrize("rotation", [0, 90])
def test_annotated_video_draws_each_track_on_its_object(tmp_path: Path, rotation: int) -> None:
    source = tmp_path / "scene.mp4"
    scripts = [[("moving right", 2.0)], [("static", 2.0)]]
    scene = write_detection_video(source, scripts, width=160, height=120, seed=8, rotation=rotation)
    keyframes = (0.5, 1.5)
    detections = [
        detection(t, rotate_box(scene.box(i, t), rotation), 10 + i) for t in keyframes for i in range(2)
    ]
    target = tmp_path / "annotated.mp4"
    render(source, target, [], allowed_formats=Settings().allowed_format_list, detections=detections)
    with av.open(str(target)) as container:
        frames = [frame_to_rgb(f) for f in container.decode(video=0)]
    shown = frames[15]  # t = 0.5 s, a keyframe
    height, width = shown.shape[:2]
    assert (height < width) == (rotation == 0)
    plain = np.rot90(scene.frame(15), k=rotation // 90).astype(int)
    for i in range(2):
        x1, y1, _, y2 = rotate_box(scene.box(i, 0.5), rotation)
        left, mid = round(x1 * width), round((y1 + y2) / 2 * height)
        edge = shown[mid, max(0, left - 1) : left + 2].astype(int)
        own, other = np.array(colour(10 + i)), np.array(colour(11 - i))
        near_own = np.abs(edge - own).sum(axis=1)
        assert near_own.min() < np.abs(edge - other).sum(axis=1).min(), f"track {10 + i}'s colour: {edge}"
        before = np.abs(plain[mid, max(0, left - 1) : left + 2] - own).sum(axis=1)
        assert near_own.min() < before.min() - 60, f"track {10 + i}: nothing drawn at its box: {edge}"
