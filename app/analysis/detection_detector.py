"""The person-detector stage: a catalog ``person_detector`` entry as a ``PersonDetector``.

The entry loads through the same ``ModelLoader`` as every model (strict keys and shapes,
sha256 against ``weights.lock.json``, LRU cache, ``models fetch`` / auto-fetch). What its
builder returns either has ``detect`` (used as is) or is a torchvision-style detector,
wrapped here: keyframes go in as one float batch (0..1 RGB; frames of one video share a
size), boxes come back in pixels and are normalised, and only label ``PERSON_LABEL`` is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from app.analysis.detection_types import PERSON_LABEL, PersonBox, PersonDetector, clamp_box
from app.analysis.loader import LoadedModel, ModelLoader
from app.analysis.spec import ModelSpec
from app.errors import ManifestInvalid


class TorchvisionPersons:
    """``PersonDetector`` over a torchvision-style detector (``forward(images) -> [dict]``)."""

    def __init__(self, module: nn.Module, device: str) -> None:
        self.module, self.device = module, torch.device(device)

    @torch.inference_mode()
    def detect(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[list[PersonBox]]:
        out: list[list[PersonBox]] = []
        for group in _same_size(images):
            batch = torch.stack([torch.from_numpy(np.ascontiguousarray(img)) for img in group])
            batch = batch.permute(0, 3, 1, 2).to(self.device, torch.float32).div_(255.0)
            found = self.module(batch)
            out.extend(_persons(found[i], img.shape[0], img.shape[1]) for i, img in enumerate(group))
        return out


def _same_size(images: Sequence[npt.NDArray[np.uint8]]) -> list[list[npt.NDArray[np.uint8]]]:
    """Consecutive runs of equally sized frames (one batch each; order kept)."""
    groups: list[list[npt.NDArray[np.uint8]]] = []
    for image in images:
        if groups and groups[-1][0].shape == image.shape:
            groups[-1].append(image)
        else:
            groups.append([image])
    return groups


def _persons(found: dict[str, Any], height: int, width: int) -> list[PersonBox]:
    boxes, scores, labels = found["boxes"].cpu(), found["scores"].cpu(), found["labels"].cpu()
    people = []
    for box, score, label in zip(boxes.tolist(), scores.tolist(), labels.tolist(), strict=True):
        if int(label) != PERSON_LABEL:
            continue
        x1, y1, x2, y2 = clamp_box((box[0] / width, box[1] / height, box[2] / width, box[3] / height))
        if x2 > x1 and y2 > y1:
            people.append(PersonBox((x1, y1, x2, y2), float(score)))
    return people


def as_person_detector(loaded: LoadedModel) -> PersonDetector:
    """The loaded module itself when it has ``detect``, else the torchvision wrapper."""
    module = loaded.module
    if isinstance(module, PersonDetector):
        return module
    return TorchvisionPersons(module, loaded.device)


def load_person_detector(loader: ModelLoader, spec: ModelSpec) -> tuple[PersonDetector, LoadedModel]:
    """The detector of a ``person_detector`` entry, in eval mode on the loader's device."""
    if spec.task != "person_detector":
        raise ManifestInvalid(f"model {spec.name!r} is not a person detector (task {spec.task!r})")
    loaded = loader.load(spec)
    return as_person_detector(loaded), loaded


def filter_people(found: list[PersonBox], min_score: float) -> list[PersonBox]:
    """People at or above ``min_score``, most certain first."""
    return sorted((p for p in found if p.score >= min_score), key=lambda p: -p.score)
