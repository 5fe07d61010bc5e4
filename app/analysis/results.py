"""The JSON results payload: segments, summary, runs and provenance (plain Python floats only)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import torch

import app
from app.analysis.classifier import Label, top_k
from app.analysis.plan import SamplingPlan
from app.analysis.spec import ModelSpec

_PACKAGES = ("torch", "torchvision", "pytorchvideo", "av")


@dataclass(frozen=True)
class SegmentResult:
    index: int
    start: float
    end: float
    first_frame_time: float
    last_frame_time: float
    probs: torch.Tensor
    labels: list[Label]

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "start": float(self.start),
            "end": float(self.end),
            "first_frame_time": float(self.first_frame_time),
            "last_frame_time": float(self.last_frame_time),
            "labels": [label.to_dict() for label in self.labels],
        }


def segment_results(
    plan: SamplingPlan,
    means: dict[int, torch.Tensor],
    used_times: dict[int, list[float]],
    labels: tuple[str, ...],
    options: dict[str, Any],
) -> list[SegmentResult]:
    """One entry per planned segment; frame times are those of the frames actually decoded."""
    k, min_score = options["top_k"], options["min_score"]
    out = []
    for seg in plan.segments:
        times = used_times.get(seg.index) or [seg.first_frame_time, seg.last_frame_time]
        probs = means[seg.index]
        out.append(
            SegmentResult(
                seg.index,
                seg.start,
                seg.end,
                min(times),
                max(times),
                probs,
                top_k(probs, labels, k, min_score),
            )
        )
    return out


def summary(
    segments: list[SegmentResult], labels: tuple[str, ...], *, k: int, min_score: float
) -> list[Label]:
    """Top-k of the mean of the segments' probability vectors."""
    mean = torch.stack([s.probs for s in segments]).mean(dim=0)
    return top_k(mean, labels, k, min_score)


def runs(segments: list[SegmentResult], labels: tuple[str, ...], *, min_score: float) -> list[dict[str, Any]]:
    """Consecutive segments sharing a top-1 label, merged; a top-1 below ``min_score`` breaks a run."""
    merged: list[dict[str, Any]] = []
    scores: list[float] = []
    previous: int | None = None
    for seg in segments:
        best = top_k(seg.probs, labels, 1)[0]
        if best.score < min_score:
            previous = None
            continue
        if previous is not None and best.class_id == merged[-1]["class_id"]:
            merged[-1]["end"] = float(seg.end)
            scores.append(best.score)
        else:
            if merged:
                merged[-1]["score"] = float(sum(scores) / len(scores))
            merged.append(
                {
                    "label": best.label,
                    "class_id": best.class_id,
                    "start": float(seg.start),
                    "end": float(seg.end),
                }
            )
            scores = [best.score]
        previous = best.class_id
    if merged:
        merged[-1]["score"] = float(sum(scores) / len(scores))
    return merged


def preprocessing_hash(spec: ModelSpec, options: dict[str, Any]) -> str:
    """Identifies everything that shapes the model's input, so results can be compared."""
    clip_spec = {
        key: getattr(spec, key)
        for key in (
            "builder",
            "builder_kwargs",
            "frames",
            "sampling_rate",
            "alpha",
            "short_side",
            "crop",
            "three_crop_size",
            "mean",
            "std",
            "channel_order",
            "output",
            "labelset",
        )
    }
    blob = json.dumps({"spec": clip_spec, "options": options}, sort_keys=True, default=list)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def versions() -> dict[str, str]:
    found = {}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "unknown"
    found["app"] = app.__version__
    return found


def payload(
    spec: ModelSpec,
    labels: tuple[str, ...],
    options: dict[str, Any],
    video: dict[str, Any],
    segments: list[SegmentResult],
    weights_sha256: str,
) -> dict[str, Any]:
    """The results document stored for a job and returned by the API."""
    k, min_score = options["top_k"], options["min_score"]
    return {
        "model": spec.name,
        "labelset": spec.labelset,
        "options": options,
        "video": video,
        "segments": [s.to_dict() for s in segments],
        "summary": [label.to_dict() for label in summary(segments, labels, k=k, min_score=min_score)],
        "runs": runs(segments, labels, min_score=min_score),
        "provenance": {
            "model": spec.name,
            "weights_file": spec.weights,
            "weights_sha256": weights_sha256,
            "preprocessing_hash": preprocessing_hash(spec, options),
            "versions": versions(),
        },
    }
