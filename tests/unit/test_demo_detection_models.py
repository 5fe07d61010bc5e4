"""The demo detection pair's networks: the detector's heatmap decoding puts boxes where the
training targets say, both builders give what the pipeline calls (the ``PersonDetector``
protocol; ``forward(clip, bboxes)`` with one row of scores per box)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from app.analysis.detection_types import PersonDetector
from app.demo.detection_models import STRIDE, demo_action_detector, demo_person_detector, scale_frames


def test_a_heatmap_peak_decodes_to_its_box() -> None:
    det = demo_person_detector()
    heat = torch.full((16, 21), -9.0)
    heat[5, 7] = 3.0
    heat[12, 3] = 0.5  # a weaker second object
    size = torch.zeros(2, 16, 21)
    size[:, 5, 7] = torch.tensor([math.log(12 / STRIDE), math.log(6 / STRIDE)])
    offset = torch.zeros(2, 16, 21)
    offset[:, 5, 7] = torch.tensor([0.25, 0.5])
    found = det.decode(heat, size, offset, 64, 85)
    mass = float(torch.sigmoid(heat[4:7, 6:9]).sum())  # uncalibrated: the score is mass / (1 + mass)
    assert len(found) == 2 and found[0].score == pytest.approx(mass / (1 + mass))
    det.score_scale.fill_(2.0)
    det.score_shift.fill_(-1.0)
    calibrated = det.decode(heat, size, offset, 64, 85)[0]
    assert calibrated.score == pytest.approx(1 / (1 + math.exp(-(2.0 * math.log(mass) - 1.0))))
    assert calibrated.box == found[0].box
    cx, cy = 7.25 * STRIDE, 5.5 * STRIDE
    assert found[0].box == pytest.approx(((cx - 6) / 85, (cy - 3) / 64, (cx + 6) / 85, (cy + 3) / 64))
    assert found[1].score < found[0].score


def test_the_detector_meets_the_protocol_on_any_frame_size() -> None:
    det = demo_person_detector()
    assert isinstance(det, PersonDetector)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in ((120, 160), (160, 120), (33, 47))]
    found = det.detect(images)
    assert len(found) == 3
    for boxes in found:
        assert len(boxes) <= det.max_objects
        for p in boxes:
            x1, y1, x2, y2 = p.box
            assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1 and 0 <= p.score <= 1


def test_the_action_head_scores_each_box_of_each_clip() -> None:
    head = demo_action_detector().eval()
    clips = torch.randn(2, 3, 8, 64, 85)
    bboxes = torch.tensor([[0, 10, 10, 30, 20], [0, 50, 30, 60, 50], [1, 5, 5, 20, 40.0]])
    with torch.no_grad():
        out = head(clips, bboxes)
    assert out.shape == (3, 7)
    with torch.no_grad():
        again = head(clips[1:], torch.tensor([[0, 5, 5, 20, 40.0]]))
    assert torch.allclose(out[2], again[0], atol=1e-5), "a box sees its own clip only"
    wide = head.windows(bboxes, 64, 85)
    assert (wide[:, 3] - wide[:, 1] >= 0.5 * 64 - 1e-4).all(), "at least half the short side"
    assert torch.equal(wide[:, 0], bboxes[:, 0])


def test_frames_scale_as_the_engine_scales_them() -> None:
    assert scale_frames(torch.zeros(3, 120, 160), 64).shape == (3, 64, 85)
    assert scale_frames(torch.zeros(3, 8, 160, 120), 64).shape == (3, 8, 85, 64)
