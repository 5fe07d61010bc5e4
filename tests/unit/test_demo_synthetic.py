"""The synthetic motion generator behind the demo model: deterministic, and each class looks as named."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from app.demo.classes import CLASSES, class_id
from app.demo.motion import SPEED_RANGE, state_at
from app.demo.synthetic import SyntheticScene, render_frames, write_scripted_video
from app.demo.video import h264_round_trip, read_video_rgb

SEEDS = range(6)


def _centroids(scene: SyntheticScene, frames: int, obj: int) -> np.ndarray:
    """Centroid (x, y) per frame of object ``obj``'s rendered coverage.

    NaN while the object touches the stage border (it wraps around: part of it
    shows at the opposite edge, which would drag the centroid across the frame).
    """
    out = []
    for k in range(frames):
        alpha = scene.object_alpha(k, obj)[scene.stage.rows, scene.stage.columns]
        border = np.concatenate([alpha[0], alpha[-1], alpha[:, 0], alpha[:, -1]])
        if border.max() > 0 or alpha.sum() == 0:
            out.append((np.nan, np.nan))
        else:
            ys, xs = np.mgrid[0 : alpha.shape[0], 0 : alpha.shape[1]]
            out.append(((xs * alpha).sum() / alpha.sum(), (ys * alpha).sum() / alpha.sum()))
    return np.array(out)


def test_same_seed_same_frames_and_different_seed_different_frames() -> None:
    a = list(render_frames("rotating", 0.5, fps=30, width=96, height=64, seed=7))
    b = list(render_frames("rotating", 0.5, fps=30, width=96, height=64, seed=7))
    c = list(render_frames("rotating", 0.5, fps=30, width=96, height=64, seed=8))
    assert len(a) == 15
    assert a[0].shape == (64, 96, 3) and a[0].dtype == np.uint8
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])


def test_frames_render_independently_of_order() -> None:
    scene = SyntheticScene([("moving up", 1.0), ("flashing", 1.0)], seed=3)
    in_order = list(scene.frames())
    assert np.array_equal(
        SyntheticScene([("moving up", 1.0), ("flashing", 1.0)], seed=3).frame(45), in_order[45]
    )


@pytest.mark.parametrize(
    ("label", "axis", "sign"),
    [("moving left", 0, -1), ("moving right", 0, 1), ("moving up", 1, -1), ("moving down", 1, 1)],
)
def test_moving_classes_move_every_object_in_the_stated_direction(label: str, axis: int, sign: int) -> None:
    steps = []
    for seed in SEEDS:
        scene = SyntheticScene([(label, 1.0)], seed=seed)
        for obj in range(scene.object_count):
            d = np.diff(_centroids(scene, 30, obj), axis=0)
            steps.append(d[np.isfinite(d).all(axis=1)])
            x0, y0 = scene.state(0, obj).x, scene.state(0, obj).y
            x1, y1 = scene.state(29, obj).x, scene.state(29, obj).y
            moved = np.array([x1 - x0, y1 - y0])
            wrapped = abs(moved[axis]) > 0.5  # crossed the wrap-around seam
            assert wrapped or sign * moved[axis] > 0.09, (seed, obj, moved)
            assert moved[1 - axis] == 0.0
    all_steps = np.concatenate(steps)
    assert len(all_steps) > 100
    # >= 0.1 stage sides per second on a 120 px stage is >= 0.4 px per frame.
    assert (sign * all_steps[:, axis] > 0.3).all(), all_steps[:, axis].min()
    assert np.abs(all_steps[:, 1 - axis]).max() < 0.1  # anti-aliasing jitter only


def test_static_objects_stay_put_and_unchanged() -> None:
    for seed in SEEDS:
        scene = SyntheticScene([("static", 1.0)], seed=seed)
        assert np.array_equal(scene.object_alpha(0), scene.object_alpha(29))
        # Only the per-frame sensor noise changes the picture.
        diff = np.abs(scene.frame(0).astype(np.float32) - scene.frame(29).astype(np.float32))
        assert diff.mean() < 3 * scene.noise_sigma + 1


def test_rotating_objects_turn_in_place() -> None:
    for seed in SEEDS:
        scene = SyntheticScene([("rotating", 1.0)], seed=seed)
        for obj in range(scene.object_count):
            assert len({(scene.state(k, obj).x, scene.state(k, obj).y) for k in range(30)}) == 1
            a, b = scene.object_alpha(0, obj) > 0.5, scene.object_alpha(8, obj) > 0.5
            iou = (a & b).sum() / (a | b).sum()
            assert iou < 0.85, (seed, obj, iou)  # >= 60 deg/s: >= 16 degrees per 8 frames


def test_flashing_objects_switch_on_and_off() -> None:
    for seed in SEEDS:
        scene = SyntheticScene([("flashing", 1.07)], seed=seed)
        for obj in range(scene.object_count):
            region = np.maximum.reduce([scene.object_alpha(k, obj) for k in range(32)]) > 0.5
            visible = np.array([scene.state(k, obj).visible for k in range(32)])
            assert visible.any() and (~visible).any(), seed
            # The object does not move while it flashes.
            assert len({(scene.state(k, obj).x, scene.state(k, obj).y) for k in range(32)}) == 1
            if scene.object_count == 1:  # with one object, the pixels alone must show it
                contrast = [
                    np.abs(scene.frame(k).astype(np.float32) - scene.background)[region].mean()
                    for k in range(32)
                ]
                assert np.array_equal(np.array(contrast) > 30, visible), (seed, contrast)


def test_objects_stand_out_from_the_background() -> None:
    for seed in range(20):
        scene = SyntheticScene([(CLASSES[seed % len(CLASSES)], 0.2)], seed=seed)
        top = scene.object_count - 1  # drawn last, never covered
        mask = scene.object_alpha(0, top) > 0.99
        if not mask.any():  # flashed off at t=0, or off stage
            continue
        diff = np.abs(scene.frame(0).astype(np.float32) - scene.background)[mask].sum(axis=1)
        assert np.median(diff) > 80, seed


def test_scenes_have_one_to_three_objects() -> None:
    counts = {SyntheticScene([("static", 0.1)], seed=seed).object_count for seed in range(30)}
    assert counts == {1, 2, 3}


def test_script_parts_follow_each_other_and_the_objects_persist() -> None:
    script = [("moving right", 1.0), ("static", 0.5), ("moving up", 1.0)]
    scene = SyntheticScene(script, seed=11)
    assert scene.frame_count == 75
    assert [scene.label_at(k) for k in (0, 29, 30, 44, 45, 74)] == [
        "moving right",
        "moving right",
        "static",
        "static",
        "moving up",
        "moving up",
    ]
    for obj in range(scene.object_count):
        # Across the static -> moving up boundary each object continues from where it stood.
        before, start, after = scene.state(44, obj), scene.state(45, obj), scene.state(46, obj)
        assert (before.x, before.y, before.angle) == (start.x, start.y, start.angle)
        assert after.x == start.x and 0 < start.y - after.y <= SPEED_RANGE[1] / 30 + 1e-12


def test_unknown_label_and_bad_script_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown demo class"):
        SyntheticScene([("jumping", 1.0)])
    with pytest.raises(ValueError):
        SyntheticScene([])
    with pytest.raises(ValueError):
        SyntheticScene([("static", 0.0)])
    assert [class_id(c) for c in CLASSES] == list(range(len(CLASSES)))


def test_write_scripted_video_is_decodable_with_the_right_length(tmp_path: Path) -> None:
    path = tmp_path / "script.mp4"
    script = [("moving right", 1.0), ("static", 0.5), ("flashing", 1.0)]
    write_scripted_video(path, script, fps=30, width=128, height=96, seed=5)
    frames, times = read_video_rgb(path)
    assert len(frames) == 75
    assert frames[0].shape == (96, 128, 3)
    assert times[0] == pytest.approx(0.0) and times[-1] == pytest.approx(74 / 30, abs=1e-3)
    scene = SyntheticScene(script, fps=30, width=128, height=96, seed=5)
    for k in (0, 40, 74):
        err = np.abs(frames[k].astype(np.float32) - scene.frame(k).astype(np.float32)).mean()
        assert err < 8.0, (k, err)


def test_h264_round_trip_keeps_the_frames() -> None:
    frames = list(render_frames("moving down", 0.4, seed=2))
    out = h264_round_trip(frames, crf=23)
    assert len(out) == len(frames)
    assert np.abs(np.stack(out).astype(np.float32) - np.stack(frames)).mean() < 8.0


def test_odd_frame_sizes_cannot_be_encoded(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        write_scripted_video(tmp_path / "odd.mp4", [("static", 0.2)], width=121, height=90)


def test_clip_sampling_and_preprocessing_match_the_engine_recipe() -> None:
    torch = pytest.importorskip("torch")
    from app.demo.clips import CROP, clip_at, preprocess, sample_indices, window_seconds

    assert window_seconds() == pytest.approx(32 / 30)
    assert sample_indices(32) == [0, 4, 8, 13, 17, 22, 26, 31]
    frames = list(render_frames("static", 1.2, width=160, height=120, seed=1))
    x = preprocess(frames[:8])
    assert x.shape == (3, 8, CROP, CROP) and x.dtype == torch.float32
    flat = torch.full((8, 120, 160, 3), 255, dtype=torch.uint8).numpy()
    assert torch.allclose(preprocess(list(flat)), torch.full((3, 8, CROP, CROP), (1 - 0.45) / 0.225))
    times = [k / 30 for k in range(len(frames))]
    assert clip_at(frames, times, centre=0.6).shape == (3, 8, CROP, CROP)


def test_still_objects_are_wholly_on_stage_and_long_moves_land_there_without_jumps() -> None:
    """Static / rotating / flashing evidence is never a sliver parked in the wrap margin."""
    rng = np.random.default_rng(7)
    for seed in range(40):
        script = [(str(rng.choice(CLASSES)), float(rng.choice([4.0, 5.0]))) for _ in range(6)]
        scene = SyntheticScene(script, seed=seed)
        for obj, look in enumerate(scene.looks):
            lo, hi = look.radius, 1.0 - look.radius
            track = scene.tracks[obj]
            for prev, part in itertools.pairwise(track):
                end = state_at(prev, part.start)
                # Moves of >= 4 s always find a landing speed: nothing jumps at a boundary.
                assert (part.x0, part.y0) == pytest.approx((end.x, end.y), abs=1e-9), (seed, script)
            for part in track:
                if part.label not in ("moving left", "moving right", "moving up", "moving down"):
                    for t in np.linspace(part.start, part.end, 9):
                        st = state_at(part, float(t))
                        assert lo <= st.x <= hi and lo <= st.y <= hi, (seed, part.label, st)


def test_a_short_move_leaving_an_object_at_the_edge_is_followed_by_a_whole_object() -> None:
    for seed in range(40):
        scene = SyntheticScene([("moving right", 0.5), ("static", 1.0)], seed=seed)
        for obj, look in enumerate(scene.looks):
            st = scene.state(scene.frame_count - 1, obj)
            assert look.radius <= st.x <= 1 - look.radius and look.radius <= st.y <= 1 - look.radius


@pytest.mark.parametrize(("width", "height"), [(160, 120), (96, 128), (64, 64)])
def test_objects_stay_on_the_centred_square_stage_a_centre_crop_keeps(width: int, height: int) -> None:
    scene = SyntheticScene([("moving right", 1.0), ("rotating", 1.0)], width=width, height=height, seed=4)
    side = min(width, height)
    assert (scene.stage.side, scene.stage.left, scene.stage.top) == (
        side,
        (width - side) // 2,
        (height - side) // 2,
    )
    off_stage = np.ones((height, width), dtype=bool)
    off_stage[scene.stage.rows, scene.stage.columns] = False
    coverage = np.maximum.reduce([scene.object_alpha(k) for k in range(0, scene.frame_count, 5)])
    assert coverage[~off_stage].max() > 0.99
    assert not coverage[off_stage].any()
