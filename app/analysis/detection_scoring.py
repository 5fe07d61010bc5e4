"""One batch of keyframes through a detection model: clips + person boxes -> action labels.

PyTorchVideo's detection models (``DetectionBBoxNetwork``) take ``forward(clip, bboxes)``:
the clip batch (a list ``[slow, fast]`` for SlowFast) and the boxes as ``(N, 5)``
``[batch index, x1, y1, x2, y2]`` in the scaled clip's pixels, and return ``(N, classes)``.
The AVA heads end in a sigmoid (``output: probabilities``); a head that returns logits gets
one here. SlowFast's fusion overwrites its input list, so it gets a fresh list each call.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from app.analysis.detection_prep import to_clip_pixels
from app.analysis.detection_types import Box
from app.analysis.results import Label
from app.analysis.spec import ModelSpec


@dataclass(frozen=True)
class KeyframeInput:
    """One keyframe's clip (normalised float32 (3, T, h, w)) and the people on it."""

    clip: np.ndarray
    boxes: tuple[Box, ...]


def label_ids(spec: ModelSpec, count: int) -> tuple[int, ...]:
    """Each output's class id: the labels file's ``id`` (AVA's own, 1..80) where it gives one,
    else the output's index."""
    try:
        entries = json.loads(spec.labels_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        entries = None
    if isinstance(entries, list) and len(entries) == count and all(isinstance(e, dict) for e in entries):
        ids = [e.get("id") for e in entries]
        if all(isinstance(i, int) for i in ids):
            return tuple(int(i) for i in ids if isinstance(i, int))
    return tuple(range(count))


def _inputs(spec: ModelSpec, clips: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
    if spec.alpha is None:
        return clips
    t = clips.shape[2]
    index = torch.linspace(0, t - 1, t // spec.alpha).long().to(clips.device)
    return [clips.index_select(2, index), clips]


@torch.inference_mode()
def score_people(
    model: nn.Module, spec: ModelSpec, batch: Sequence[KeyframeInput], device: str
) -> list[np.ndarray]:
    """Per keyframe, an array (people, classes) of independent scores in 0..1."""
    with_people = [i for i, item in enumerate(batch) if item.boxes]
    out = [np.zeros((0, 0), np.float32) for _ in batch]
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i in with_people:
        by_shape.setdefault(batch[i].clip.shape, []).append(i)
    for shape, members in by_shape.items():
        height, width = shape[2], shape[3]
        clips = torch.from_numpy(np.stack([batch[i].clip for i in members])).to(device)
        rows = [
            [float(slot), *to_clip_pixels(box, height, width)]
            for slot, i in enumerate(members)
            for box in batch[i].boxes
        ]
        bboxes = torch.tensor(rows, dtype=torch.float32, device=device)
        inputs = _inputs(spec, clips)
        scores = model(list(inputs) if isinstance(inputs, list) else inputs, bboxes)
        if spec.output == "logits":
            scores = torch.sigmoid(scores)
        values = scores.float().cpu().numpy().reshape(len(rows), -1)
        start = 0
        for i in members:
            out[i] = values[start : start + len(batch[i].boxes)]
            start += len(batch[i].boxes)
    return out


def kept_labels(
    scores: np.ndarray, labels: Sequence[str], ids: Sequence[int], *, min_score: float, top_k: int
) -> tuple[Label, ...]:
    """The person's labels at or above ``min_score``, best first, at most ``top_k``."""
    order = np.argsort(-scores, kind="stable")[:top_k]
    return tuple(
        Label(labels[i], ids[i], round(float(scores[i]), 6)) for i in order if float(scores[i]) >= min_score
    )


def summary_labels(per_person: Sequence[tuple[Label, ...]], top_k: int) -> tuple[Label, ...]:
    """Each label's best score over every person and keyframe, best first, ``top_k`` of them."""
    best: dict[int, Label] = {}
    for labels in per_person:
        for label in labels:
            if label.class_id not in best or label.score > best[label.class_id].score:
                best[label.class_id] = label
    return tuple(sorted(best.values(), key=lambda lab: (-lab.score, lab.class_id))[:top_k])
