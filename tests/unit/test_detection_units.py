"""Detection pieces one by one: keyframes and AVA clips, box mapping, the tracker, the caller's
``boxes`` option, the catalog entries and AVA's labels."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from app.analysis.catalog import load_catalog, read_labels
from app.analysis.detection_plan import clip_indices, keyframe_times, plan_keyframes
from app.analysis.detection_prep import DetectionPrep, to_clip_pixels
from app.analysis.detection_results import PersonDetection
from app.analysis.detection_scoring import kept_labels, label_ids
from app.analysis.detection_types import box_iou
from app.analysis.results import Label
from app.analysis.tracker import assign_tracks, build_tracks
from app.api.detection_formats import keyframe_windows
from app.errors import InvalidOptions
from app.options import JobOptions

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def get_sequence(center: int, half: int, rate: int, n: int) -> list[int]:
    """PySlowFast ``slowfast/datasets/utils.py:get_sequence``, as published."""
    seq = list(range(center - half, center + half, rate))
    return [min(max(i, 0), n - 1) for i in seq]


@pytest.mark.parametrize(("frames", "rate", "key"), [(4, 16, 45), (32, 2, 45), (4, 16, 3), (32, 2, 88)])
def test_clip_frames_are_pyslowfasts_at_30_fps(frames: int, rate: int, key: int) -> None:
    times = [Fraction(i, 30) for i in range(90)]
    assert list(clip_indices(times, key, frames, rate)) == get_sequence(key, frames * rate // 2, rate, 90)
    assert clip_indices(times, key, frames, rate)[frames // 2] == key  # keyframe at the centre


def test_clip_frames_at_another_rate_take_the_nearest_frame() -> None:
    times = [Fraction(i, 15) for i in range(60)]  # 15 fps: every 30-fps offset of 2 is one frame here
    assert clip_indices(times, 30, 4, 16) == (14, 22, 30, 38)


def test_keyframes_sit_mid_interval_and_respect_start_and_end() -> None:
    assert keyframe_times(3.2, every=1.0) == [0.5, 1.5, 2.5]
    assert keyframe_times(10.0, every=2.0, start=1.0, end=6.0) == [2.0, 4.0]
    assert keyframe_times(0.3, every=1.0) == [0.15]  # a short video still gets its middle


def test_plan_ends_each_clip_with_its_keyframe_and_refuses_too_many() -> None:
    from app.analysis.catalog import load_catalog

    spec = load_catalog(Path("/nonexistent")).get("slow_r50_detection")
    times = [i / 30 for i in range(120)]
    plan = plan_keyframes(spec, JobOptions(), times, 4.0, limit=10)
    assert plan.times == (0.5, 1.5, 2.5, 3.5) and len(plan) == 4
    for segment, t in zip(plan.plan.segments, plan.times, strict=True):
        (clip,) = segment.clips
        assert len(clip.frames) == spec.frames + 1 and times[clip.frames[-1]] == t
    boxes = JobOptions(boxes=[{"time": 2.0, "boxes": []}, {"time": 0.99, "boxes": [[0, 0, 1, 1]]}])
    assert plan_keyframes(spec, boxes, times, 4.0, limit=10).times == (1.0, 2.0)  # nearest frame, sorted
    with pytest.raises(InvalidOptions, match="limit of 3"):
        plan_keyframes(spec, JobOptions(), times, 4.0, limit=3)
    with pytest.raises(InvalidOptions, match="after the video"):
        plan_keyframes(spec, JobOptions(boxes=[{"time": 5.0, "boxes": []}]), times, 4.0, limit=10)


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_prep_scales_the_short_side_keeps_the_keyframe_whole_in_display_orientation(turns: int) -> None:
    from app.analysis.catalog import load_catalog

    spec = load_catalog(Path("/nonexistent")).get("slow_r50_detection")
    rng = np.random.default_rng(turns)
    coded = rng.integers(0, 256, (96, 160, 3), dtype=np.uint8)  # as stored: 160x96
    shown = np.ascontiguousarray(np.rot90(coded, k=turns))
    prep = DetectionPrep.for_video(spec, 96, 160)
    out = np.zeros(prep.clip_shape(4), np.float32)  # same slot size in either orientation
    prep.write_views([shown] * 4 + [shown], out)
    clip, key = prep.unpack(out, 4)
    assert np.array_equal(key, shown)
    h, w = (256, 426) if turns % 2 == 0 else (426, 256)
    assert clip.shape == (3, 4, h, w)
    pixel = (shown[0, 0].astype(np.float32) / 255 - 0.45) / 0.225  # corner pixels survive bilinear
    assert np.allclose(clip[:, 0, 0, 0], pixel, atol=1e-5)


def test_boxes_map_to_clip_pixels_and_are_clipped_like_the_tutorial() -> None:
    assert to_clip_pixels((0.25, 0.5, 0.75, 1.0), 256, 341) == (85.25, 128.0, 255.75, 255.0)
    assert to_clip_pixels((0.0, 0.0, 1.0, 1.0), 256, 256) == (0.0, 0.0, 255.0, 255.0)


def test_tracker_follows_people_by_iou_survives_one_miss_and_splits_on_a_jump() -> None:
    a, b = (0.1, 0.1, 0.3, 0.9), (0.6, 0.1, 0.8, 0.9)
    shift = (0.12, 0.1, 0.32, 0.9)
    frames = [[a, b], [b, shift], [shift], [], [b], [(0.0, 0.0, 0.05, 0.05)]]
    ids = assign_tracks(frames)
    assert ids[0] == [1, 2] and ids[1] == [2, 1] and ids[2] == [1]
    assert ids[4] == [3]  # person 2 missed two keyframes: a new track
    assert ids[5] == [4]
    assert box_iou(a, shift) > 0.3 > box_iou(a, b)


def test_tracker_keeps_a_fast_walker_whose_boxes_never_overlap_and_swaps_no_one() -> None:
    """At one keyframe a second a walker moves 1.5 box widths per keyframe (no IoU between
    consecutive boxes); a still person stands below, a second walker comes the other way."""

    def box(x: float, y: float) -> tuple[float, float, float, float]:
        return (x, y, x + 0.08, y + 0.3)

    frames = [[box(0.05 + 0.12 * k, 0.1), box(0.5, 0.6), box(0.85 - 0.1 * k, 0.25)] for k in range(7)]
    ids = assign_tracks(frames)
    assert all(row == [1, 2, 3] for row in ids), ids
    assert box_iou(frames[0][0], frames[1][0]) == 0.0  # IoU alone would have cut the walker


def test_tracker_links_a_near_box_only_when_its_size_fits() -> None:
    small, far_small, big = (0.1, 0.1, 0.2, 0.3), (0.22, 0.1, 0.32, 0.3), (0.2, 0.0, 0.6, 0.9)
    assert assign_tracks([[small], [far_small]]) == [[1], [1]]
    assert assign_tracks([[small], [big]]) == [[1], [2]]
    assert assign_tracks([[small], [(0.8, 0.6, 0.9, 0.8)]]) == [[1], [2]]  # too far


def test_tracks_have_runs_of_consecutive_keyframes_keeping_a_label() -> None:
    stand, talk = Label("stand", 12, 0.9), Label("talk to", 79, 0.5)
    seen = [
        PersonDetection(1.0, (0, 0, 1, 1), 0.99, 7, (stand, talk)),
        PersonDetection(2.0, (0, 0, 1, 1), 0.98, 7, (Label("stand", 12, 0.7),)),
        PersonDetection(3.0, (0, 0, 1, 1), 0.97, 7, (talk,)),
    ]
    (track,) = build_tracks(seen)
    assert (track.id, track.start, track.end) == (7, 1.0, 3.0)
    assert [(r.label, r.start, r.end, r.score) for r in track.runs] == [
        ("stand", 1.0, 2.0, 0.8),
        ("talk to", 1.0, 1.0, 0.5),
        ("talk to", 3.0, 3.0, 0.5),
    ]


def test_labels_keep_min_score_and_top_k_with_avas_ids() -> None:
    spec = load_catalog(Path("/nonexistent")).get("slow_r50_detection")
    names = read_labels(spec)
    ids = label_ids(spec, len(names))
    assert len(names) == 80 and ids == tuple(range(1, 81))
    scores = np.zeros(80, np.float32)
    scores[[11, 78, 3]] = [0.9, 0.4, 0.2]
    kept = kept_labels(scores, names, ids, min_score=0.3, top_k=5)
    assert [(lab.label, lab.class_id) for lab in kept] == [
        ("stand", 12),
        ("talk to (e.g., self, a person, a group)", 79),
    ]
    assert len(kept_labels(scores, names, ids, min_score=0.0, top_k=2)) == 2


def test_ava_labels_are_copied_with_ids_and_the_60_evaluated_marked() -> None:
    copied = json.loads((Path(__file__).resolve().parents[2] / "app/analysis/labels/ava.json").read_text())
    if SHARED.is_dir():
        source = json.loads((SHARED / "ava_actions_v2.2_labels.json").read_text())
        evaluated = {e["id"] for e in json.loads((SHARED / "ava_actions_eval60_labels.json").read_text())}
        assert [(e["id"], e["name"]) for e in copied] == [(e["id"], e["name"]) for e in source]
        assert {e["id"] for e in copied if e["evaluated"]} == evaluated
    assert sum(e["evaluated"] for e in copied) == 60 and len(copied) == 80


def test_catalog_entries() -> None:
    catalog = load_catalog(Path("/nonexistent"))
    slow, fast = catalog.get("slow_r50_detection"), catalog.get("slowfast_r50_detection")
    detector = catalog.get("fasterrcnn_resnet50_fpn_coco")
    assert (slow.frames, slow.sampling_rate, slow.alpha, slow.mAP) == (4, 16, None, 19.5)
    assert (fast.frames, fast.sampling_rate, fast.alpha, fast.mAP) == (32, 2, 4, 24.67)
    for spec in (slow, fast):
        assert spec.task == "detection" and spec.labelset == "ava" and spec.min_score == 0.3
        assert spec.person_detector == detector.name and spec.short_side == 256
    assert detector.task == "person_detector" and detector.checkpoint_key is None
    assert detector.url and detector.url.endswith(detector.weights)


@pytest.mark.parametrize(
    ("boxes", "words"),
    [
        ([{"time": 1, "boxes": [[0.5, 0.1, 0.5, 0.2]]}], "x1 < x2"),
        ([{"time": 1, "boxes": [[0.1, 0.3, 0.5, 0.2]]}], "y1 < y2"),
        ([{"time": 1, "boxes": [[0.1, 0.1, 1.2, 0.2]]}], "less than or equal to 1"),
        ([{"time": -1, "boxes": []}], "greater than or equal to 0"),
        ([{"time": 1, "boxes": []}, {"time": 1, "boxes": []}], "appears twice"),
        ([], "at least one"),
        ([{"time": i, "boxes": []} for i in range(1001)], "at most 1,000"),
        ([{"time": 1, "boxes": [[0, 0, 1, 1]] * 51}], "at most 50"),
    ],
)
def test_boxes_option_is_validated(boxes: list[dict[str, object]], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        JobOptions(boxes=boxes)


def test_keyframe_windows_meet_halfway() -> None:
    assert keyframe_windows([0.5, 1.5, 2.5], 3.0) == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]
    assert keyframe_windows([2.0], 10.0) == [(0.0, 10.0)]


def test_models_md_detection_table_matches_the_catalog() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "MODELS.md").read_text()
    rows = {
        cells[0].strip("`"): cells
        for line in doc.splitlines()
        if line.startswith("| `") and len(cells := [c.strip() for c in line.strip("|").split("|")]) == 11
    }
    catalog = load_catalog(Path("/nonexistent"))
    tasks = ("detection", "person_detector")
    assert set(rows) == {n for n in catalog.names() if catalog.get(n).task in tasks}
    for name, cells in rows.items():
        spec = catalog.get(name)
        assert (
            cells[1] == spec.task and cells[7] == f"{spec.params_m:.2f}" and cells[8] == f"`{spec.weights}`"
        )
        assert cells[9] == (f"`{spec.checkpoint_key}`" if spec.checkpoint_key else "bare")
        if spec.task == "detection":
            assert cells[2] == f"{spec.frames}\N{MULTIPLICATION SIGN}{spec.sampling_rate}" and cells[
                4
            ] == str(spec.short_side)
            assert cells[6] == f"AVA v2.2 mAP {spec.mAP:.2f}" and cells[10] == f"`{spec.person_detector}`"


def test_detection_entries_build_with_their_parameter_count_and_take_boxes() -> None:
    import torch

    from app.analysis.loader import build_model

    catalog = load_catalog(Path("/nonexistent"))
    for name in ("slow_r50_detection", "slowfast_r50_detection", "fasterrcnn_resnet50_fpn_coco"):
        spec = catalog.get(name)
        model = build_model(spec)
        assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(spec.params_m, abs=0.01)
    slow = build_model(catalog.get("slow_r50_detection")).eval()
    boxes = torch.tensor([[0.0, 10.0, 20.0, 100.0, 200.0], [0.0, 5.0, 5.0, 50.0, 60.0]])
    with torch.inference_mode():
        out = slow(torch.zeros(1, 3, 4, 256, 320), boxes)
    assert out.shape == (2, 80) and bool(((out >= 0) & (out <= 1)).all())  # sigmoid in the head
