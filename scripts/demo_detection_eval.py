"""Held-out checks of the demo detection pair (``scripts/train_demo_detection.py``): the detector's
score calibration and the numbers ``models/DEMO_MODEL.md`` reports.

Both run the detector as the service does (``decode``: 3x3 peaks, calibrated scores) on scenes
no training step saw (their own seeds, :mod:`demo_detection_data`).
"""

from __future__ import annotations

import math
from typing import Any

import demo_detection_data as data
import numpy as np
import torch
import torch.nn.functional as F

from app.analysis.detection_types import box_iou
from app.demo.detection_models import ActionHead, StandInDetector


def calibrate(det: StandInDetector, examples: list[data.Example]) -> tuple[float, float]:
    """Platt scaling of the detector's peak scores on held-out scenes: a logistic regression of
    "this peak is an object (IoU >= 0.5, one peak per object)" on the log heat mass around the
    peak (the logit of the score ``decode`` gives before calibration); stored in the model."""
    logits, hits = [], []
    with torch.no_grad():
        for e in examples:
            x = torch.from_numpy(e.image).float()[None]
            heat, size, offset = det(x)
            truth = [tuple(b) for b in e.boxes.tolist()]
            taken: set[int] = set()
            for p in det.decode(heat[0, 0], size[0], offset[0], x.shape[-2], x.shape[-1]):
                best = max(range(len(truth)), key=lambda k: box_iou(p.box, truth[k]))
                hit = box_iou(p.box, truth[best]) >= 0.5 and best not in taken
                taken |= {best} if hit else set()
                logits.append(math.log(p.score / max(1 - p.score, 1e-6)))
                hits.append(float(hit))
    x, y = torch.tensor(logits), torch.tensor(hits)
    a, b = torch.ones((), requires_grad=True), torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([a, b], max_iter=200)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(a * x + b, y)
        loss.backward()
        return loss

    opt.step(closure)
    det.score_scale.fill_(a.item())
    det.score_shift.fill_(b.item())
    return a.item(), b.item()


@torch.no_grad()
def evaluate(det: StandInDetector, head: ActionHead, val: list[data.Example]) -> dict[str, Any]:
    """Detector recall at IoU >= 0.5 (score >= 0.8 and >= 0.5), false positives, head accuracy on true boxes."""
    det.eval()
    head.eval()
    objects = found_08 = found_05 = false_08 = right = 0
    scores_true: list[float] = []
    per_class = {c: [0, 0] for c in data.CLASSES}
    for e in val:
        x = torch.from_numpy(e.image).float()[None]
        heat, size, offset = det(x)
        found = det.decode(heat[0, 0], size[0], offset[0], x.shape[-2], x.shape[-1])
        truth = [tuple(b) for b in e.boxes.tolist()]
        for t in truth:
            best = max((p for p in found if box_iou(p.box, t) >= 0.5), key=lambda p: p.score, default=None)
            objects += 1
            found_05 += best is not None and best.score >= 0.5
            found_08 += best is not None and best.score >= 0.8
            if best is not None:
                scores_true.append(best.score)
        false_08 += sum(1 for p in found if p.score >= 0.8 and all(box_iou(p.box, t) < 0.5 for t in truth))
        rois = torch.cat([torch.zeros(len(e.rois), 1), torch.from_numpy(e.rois)], 1)
        pred = head(torch.from_numpy(e.clip).float()[None], rois).argmax(1)
        for p, y in zip(pred.tolist(), e.labels.tolist(), strict=True):
            per_class[data.CLASSES[y]][0] += p == y
            per_class[data.CLASSES[y]][1] += 1
            right += p == y
    return {
        "images": len(val),
        "objects": objects,
        "recall_08": found_08 / objects,
        "recall_05": found_05 / objects,
        "false_08_per_image": false_08 / len(val),
        "median_true_score": float(np.median(scores_true)) if scores_true else 0.0,
        "action_accuracy": right / objects,
        "per_class": per_class,
    }
