"""A model's spec: data only (builder path, weights file, clip geometry), no torch or av."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from app.errors import ManifestInvalid

SOURCE_FPS = 30.0


@dataclass(frozen=True)
class ModelSpec:
    """One classifier: how to build it, where its weights are, how its clips are made."""

    name: str
    builder: str
    weights: str
    labels_path: Path = field(repr=False, compare=False)
    builder_kwargs: dict[str, Any] = field(default_factory=dict)
    frames: int = 8
    sampling_rate: int = 8
    alpha: int | None = None
    short_side: int = 256
    crop: int = 256
    three_crop_size: int | None = None
    mean: tuple[float, float, float] = (0.45, 0.45, 0.45)
    std: tuple[float, float, float] = (0.225, 0.225, 0.225)
    labelset: str = "kinetics400"
    labels: str = "kinetics400.json"
    url: str | None = None
    checkpoint_key: str | None = "model_state"
    output: Literal["probabilities", "logits"] = "logits"
    channel_order: Literal["rgb", "bgr"] = "rgb"
    task: Literal["classification", "multilabel", "detection", "person_detector"] = "classification"
    """classification: one softmax over the classes; multilabel: an independent sigmoid each;
    detection: a sigmoid each per person box (``detection_run.py``); person_detector: finds
    the people a detection model labels (``detection_types.py``), not a job model."""
    person_detector: str | None = None
    """Detection models: the catalog name of the person detector run on keyframes (None:
    jobs must bring their own ``boxes``)."""
    default_min_score: float | None = None
    """``min_score`` when a job does not set it (None: 0.0, or 0.5 for a multi-label model)."""
    view_combine: Literal["mean", "max"] = "mean"
    """How a segment's views (clips x crops) combine: Kinetics averages, Charades takes the max."""
    top1: float | None = None
    top5: float | None = None
    mAP: float | None = None
    """Published mean average precision, percent (multi-label datasets such as Charades)."""
    params_m: float | None = None
    gflops: float | None = None
    description: str = ""
    demo: bool = False
    source: Literal["builtin", "manifest"] = "builtin"

    @property
    def min_score(self) -> float:
        """The catalog's default ``min_score`` for this model's jobs (multi-label: 0.5 unless set,
        detection: 0.3)."""
        if self.default_min_score is not None:
            return self.default_min_score
        return {"multilabel": 0.5, "detection": 0.3}.get(self.task, 0.0)

    @property
    def clip_seconds(self) -> float:
        return clip_seconds(self)

    @property
    def default_segment_seconds(self) -> float:
        return default_segment_seconds(self)

    def crop_geometry(self, crops: int) -> tuple[int, int]:
        """(short side, crop size) for 1 or 3 spatial crops."""
        if crops == 3 and self.three_crop_size is not None:
            return self.three_crop_size, self.three_crop_size
        return self.short_side, self.crop

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("labels_path")
        data["mean"], data["std"] = list(self.mean), list(self.std)
        data["clip_seconds"] = round(self.clip_seconds, 6)
        data["default_segment_seconds"] = self.default_segment_seconds
        return data


def clip_seconds(spec: ModelSpec) -> float:
    """The model's native window: T frames every tau frames of 30 fps video (PySlowFast TARGET_FPS)."""
    return spec.frames * spec.sampling_rate / SOURCE_FPS


def default_segment_seconds(spec: ModelSpec) -> float:
    """Clip duration rounded to the nearest 0.5 s, at least 1 s: one clip covers one segment."""
    return max(1.0, int(clip_seconds(spec) * 2 + 0.5) / 2)


@cache
def _labels_from(path: Path, mtime_ns: int) -> tuple[str, ...]:
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestInvalid(f"labels file {path.name} is not readable JSON: {exc}") from exc
    if isinstance(names, list) and all(isinstance(n, dict) and isinstance(n.get("name"), str) for n in names):
        names = [n["name"] for n in names]  # [{"id", "name", ...}] (AVA's own ids: detection_labels)
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ManifestInvalid(f"labels file {path.name} must be a non-empty JSON array of names")
    return tuple(names)


def read_labels(spec: ModelSpec) -> tuple[str, ...]:
    """Class names in output order (cached per file version)."""
    try:
        mtime = spec.labels_path.stat().st_mtime_ns
    except OSError as exc:
        raise ManifestInvalid(f"labels file {spec.labels!r} for {spec.name!r} is missing") from exc
    return _labels_from(spec.labels_path, mtime)
