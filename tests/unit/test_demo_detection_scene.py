"""The detection demo's scenes: boxes hold their objects, objects stay apart and on stage,
flashing dims without vanishing, and rotated answers follow the displayed frame."""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np
import pytest

from app.analysis.decode import frame_to_rgb
from app.demo.detection_scene import DIM, DetectionScene, rotate_box, rotate_label, write_detection_video

SCRIPTS = [
    [("moving right", 2.0), ("rotating", 1.0)],
    [("flashing", 3.0)],
    [("static", 1.0), ("moving up", 2.0)],
]


def _pixels(scene: DetectionScene, obj: int, t: float) -> np.ndarray:
    """(ys, xs) of object ``obj``'s painted pixels at time ``t`` (shown as if never dimmed)."""
    mask = np.zeros((scene.height, scene.width), dtype=np.float32)
    for patch in scene._patches(obj, t):
        np.maximum(mask[patch.rows, patch.columns], patch.coverage, out=mask[patch.rows, patch.columns])
    return np.argwhere(mask > 0.5 * DIM)


@pytest.mark.parametrize("t", [0.0, 0.7, 1.5, 2.9])
def test_every_box_holds_its_object_and_only_it(t: float) -> None:
    scene = DetectionScene(SCRIPTS, width=160, height=120, seed=5)
    boxes = scene.boxes(t)
    for obj, (x1, y1, x2, y2) in enumerate(boxes):
        pix = _pixels(scene, obj, t)
        assert len(pix), "objects never vanish"
        ys, xs = (pix[:, 0] + 0.5) / scene.height, (pix[:, 1] + 0.5) / scene.width
        slack = 1.5 / scene.height
        assert ys.min() >= y1 - slack and ys.max() <= y2 + slack
        assert xs.min() >= x1 - slack and xs.max() <= x2 + slack
        # tight: the painted pixels reach (almost) every side of the box
        assert ys.min() <= y1 + 2 * slack and xs.max() >= x2 - 2 * slack
        stage = scene.stage
        assert x1 * scene.width >= stage.x0 - 1e-6 and x2 * scene.width <= stage.x0 + stage.side + 1e-6


def test_objects_stay_apart_and_follow_their_scripts() -> None:
    scene = DetectionScene(SCRIPTS, width=192, height=144, seed=11)
    for t in np.arange(0.0, 3.0, 0.1):
        states = [scene.state(i, float(t)) for i in range(3)]
        radii = [look.radius for look in scene.looks]
        for i in range(3):
            for j in range(i):
                assert math.dist((states[i].x, states[i].y), (states[j].x, states[j].y)) > radii[i] + radii[j]
    assert [scene.label(0, 1.0), scene.label(0, 2.5), scene.label(2, 0.5), scene.label(2, 2.0)] == [
        "moving right",
        "rotating",
        "static",
        "moving up",
    ]
    x_start, x_end = scene.state(0, 0.0).x, scene.state(0, 1.99).x
    assert x_end > x_start + 0.2, "moving right moves right"
    y_start, y_end = scene.state(2, 1.0).y, scene.state(2, 2.99).y
    assert y_end < y_start - 0.2, "moving up moves up"


def test_flashing_dims_but_stays_on_the_frame() -> None:
    scene = DetectionScene([[("flashing", 2.0)]], width=128, height=128, seed=3)
    visible = [scene.state(0, k / 30).visible for k in range(60)]
    assert any(visible) and not all(visible)
    off = visible.index(False)
    frame = scene.frame(off).astype(np.float32)
    x1, y1, x2, y2 = scene.box(0, off / 30)
    inside = frame[int(y1 * 128) + 2 : int(y2 * 128) - 2, int(x1 * 128) + 2 : int(x2 * 128) - 2]
    assert (
        np.abs(
            inside.mean((0, 1))
            - scene.background[int(y1 * 128) : int(y2 * 128), int(x1 * 128) : int(x2 * 128)].mean((0, 1))
        ).max()
        > 3
    )


def test_same_seed_same_scene_and_refusals() -> None:
    a, b = (DetectionScene(SCRIPTS, seed=9) for _ in range(2))
    assert np.array_equal(a.frame(17), b.frame(17)) and a.boxes(1.3) == b.boxes(1.3)
    with pytest.raises(ValueError, match="equally long"):
        DetectionScene([[("static", 1.0)], [("static", 2.0)]])
    with pytest.raises(ValueError, match="unknown demo class"):
        DetectionScene([[("dancing", 1.0)]])


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_rotated_answers_follow_the_displayed_frame(tmp_path: Path, rotation: int) -> None:
    path = tmp_path / "turned.mp4"
    scene = write_detection_video(
        path, [[("moving right", 1.0)]], width=96, height=64, seed=2, rotation=rotation
    )
    with av.open(str(path)) as container:
        decoded = [frame_to_rgb(f) for f in container.decode(video=0)]
    stored = scene.frame(15)
    shown = np.rot90(stored, k=rotation // 90)
    mask = np.zeros(stored.shape[:2], dtype=bool)
    x1, y1, x2, y2 = scene.box(0, 0.5)
    mask[round(y1 * 64) : round(y2 * 64), round(x1 * 96) : round(x2 * 96)] = True
    turned = np.rot90(mask, k=rotation // 90)
    h, w = turned.shape
    rx1, ry1, rx2, ry2 = rotate_box((x1, y1, x2, y2), rotation)
    expected = np.zeros_like(turned)
    expected[round(ry1 * h) : round(ry2 * h), round(rx1 * w) : round(rx2 * w)] = True
    assert np.array_equal(turned, expected)
    assert shown.shape == decoded[15].shape, "the file carries the display rotation"
    assert np.abs(shown.astype(np.float32) - decoded[15]).mean() < 8
    moved = {0: "moving right", 90: "moving up", 180: "moving left", 270: "moving down"}[rotation]
    assert rotate_label("moving right", rotation) == moved
    assert rotate_label("rotating", rotation) == "rotating"
