"""The person-detector contract: what a detector stage takes and returns (no torch here).

A detection model (``"task": "detection"``) labels people, so it needs their boxes first:
either the caller's (option ``boxes``) or a person detector named by the entry's
``"person_detector": "<catalog name>"``. A detector entry has ``"task": "person_detector"``,
a ``builder`` (dotted path + ``builder_kwargs``, called with those kwargs only) and weights
loaded strictly into what the builder returns (``checkpoint_key`` null: a bare state dict,
torchvision's format). The builder returns an ``nn.Module`` in one of two shapes:

* a ``PersonDetector`` (it has ``detect``): used as is, after its weights are loaded;
* a torchvision-style detector: ``forward(images: Tensor[B, 3, H, W] float 0..1 RGB)``
  returns ``[{"boxes": Tensor[N, 4] (x1, y1, x2, y2 pixels), "scores": Tensor[N],
  "labels": Tensor[N] int}, ...]`` (one dict per image); label ``PERSON_LABEL`` (1, COCO's
  person in torchvision) is a person, every other label is ignored.

Either way the pipeline sees ``PersonBox`` lists per keyframe, boxes normalised to 0..1 in
display orientation (rotation applied), filtered by the job's ``person_min_score``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

PERSON_LABEL = 1
"""torchvision's COCO category id for "person" (the detection tutorial keeps only this)."""

DETECTOR_BUILDER_PREFIXES = ("torchvision.models.detection.", "app.demo.")
"""Where a ``person_detector`` entry's builder may live (zoo/manifest checks this)."""

Box = tuple[float, float, float, float]
"""(x1, y1, x2, y2), normalised 0..1 of the displayed frame, x1 < x2 and y1 < y2."""


@dataclass(frozen=True)
class PersonBox:
    """One person found on one keyframe: where (normalised, display orientation) and how sure."""

    box: Box
    score: float


@runtime_checkable
class PersonDetector(Protocol):
    """Finds people on whole frames; called once per batch of keyframes."""

    def detect(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[list[PersonBox]]:
        """``images``: H x W x 3 RGB uint8 frames in display orientation (sizes may differ).

        Returns one list per image, every person with its score (the caller filters by
        ``person_min_score``), boxes normalised to 0..1 of that image."""
        ...


def clamp_box(box: Sequence[float]) -> Box:
    """A box clipped to the unit square (detectors may overshoot the frame by a pixel)."""
    x1, y1, x2, y2 = (min(1.0, max(0.0, float(v))) for v in box)
    return (x1, y1, x2, y2)


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two normalised boxes (0 when either is empty)."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
