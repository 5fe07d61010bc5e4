"""The results document of one analysis as typed values; ``AnalysisResult.to_dict`` is its JSON.

The engine builds these values, partial segments travel as them, and only the worker (the
JSON edge, where results go to the job store) turns them into the stored document. Plain
Python numbers only, so the JSON is the same whichever decode mode built it. No torch here:
the probability arithmetic that fills these values lives in ``assemble.py``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any, Literal, Protocol

import app

if TYPE_CHECKING:
    from app.analysis.spec import ModelSpec

_PACKAGES = ("torch", "torchvision", "pytorchvideo", "av")
_CLIP_SPEC_FIELDS = (
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


@dataclass(frozen=True)
class Label:
    """A scored class. In a multi-label summary ``score`` is the label's maximum over the
    segments and ``share`` the fraction of the analysed time it was kept (else None)."""

    label: str
    class_id: int
    score: float
    share: float | None = None

    def to_dict(self) -> dict[str, str | int | float]:
        out: dict[str, str | int | float] = {
            "label": self.label,
            "class_id": self.class_id,
            "score": self.score,
        }
        if self.share is not None:
            out["share"] = self.share
        return out


@dataclass(frozen=True)
class SegmentResult:
    """One planned segment: its span, the times of the frames it used, its top-k labels."""

    index: int
    start: float
    end: float
    first_frame_time: float
    last_frame_time: float
    labels: tuple[Label, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "start": float(self.start),
            "end": float(self.end),
            "first_frame_time": float(self.first_frame_time),
            "last_frame_time": float(self.last_frame_time),
            "labels": [label.to_dict() for label in self.labels],
        }


@dataclass(frozen=True)
class Run:
    """Consecutive segments sharing a top-1 label (multi-label: keeping a label; runs of
    different labels may then overlap); ``score`` is that label's mean score over them."""

    label: str
    class_id: int
    start: float
    end: float
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "class_id": self.class_id,
            "start": float(self.start),
            "end": float(self.end),
            "score": float(self.score),
        }


@dataclass(frozen=True)
class VideoInfo:
    """The video as the analysis saw it: the scan's facts and the decoder's counts."""

    duration: float
    width: int
    height: int
    fps: float | None
    codec: str
    pix_fmt: str | None
    frames: int
    rotation: int
    decoded_frames: int
    substituted_frames: int
    decode_errors: int
    fast_decode: bool = False
    """Non-reference frames skipped (long videos, ``fast_decode_min_seconds``)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "duration": self.duration,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "codec": self.codec,
            "pix_fmt": self.pix_fmt,
            "frames": self.frames,
            "rotation": self.rotation,
            "decoded_frames": self.decoded_frames,
            "substituted_frames": self.substituted_frames,
            "decode_errors": self.decode_errors,
        }
        if self.fast_decode:
            out["fast_decode"] = True
        return out


@dataclass(frozen=True)
class Shot:
    """One shot (``shots.py``): ``[start, end)`` in seconds; ``transition`` is how it began,
    ``cut`` or ``gradual`` (None for the first shot)."""

    index: int
    start: float
    end: float
    transition: Literal["cut", "gradual"] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "start": float(self.start),
            "end": float(self.end),
            "transition": self.transition,
        }


@dataclass(frozen=True)
class Explanation:
    """Why a segment got a label (``explain``, ``explain.py``): per clip frame its weight
    (0..1) and a map over time, each ``data[k][i][j]`` (0..1, 3 decimals) covering cell
    (i, j) of an ``h`` x ``w`` grid laid over the displayed frame at ``times[k]``."""

    segment: int
    label: str
    class_id: int
    method: str
    frames: tuple[tuple[float, float], ...]
    """(time, weight) per frame of the explained clip."""
    times: tuple[float, ...]
    data: list[Any]
    """Nested lists (t, h, w) of floats rounded to 3 decimals."""

    def to_dict(self) -> dict[str, Any]:
        t, h = len(self.data), len(self.data[0]) if self.data else 0
        return {
            "segment": self.segment,
            "label": self.label,
            "class_id": self.class_id,
            "method": self.method,
            "frames": [{"time": time, "weight": weight} for time, weight in self.frames],
            "heatmap": {
                "t": t,
                "h": h,
                "w": len(self.data[0][0]) if h else 0,
                "times": list(self.times),
                "data": self.data,
            },
        }


@dataclass(frozen=True)
class Timings:
    decode_seconds: float
    """Wall time until the decoder delivered its last clip (it overlaps inference)."""
    inference_seconds: float
    """This job's share (by views) of the forward passes it took part in."""
    shots_seconds: float | None = None
    """Time the shot detector spent in its network (``detect_shots``; it overlaps the rest)."""
    explain_seconds: float | None = None
    """Time the explainer spent making maps (``explain``; on its own thread, overlapping decoding and inference)."""
    shots_backend: str | None = None
    """Which backend ran the shot detector, and why (``shot_backend.py``)."""

    def to_dict(self) -> dict[str, float | str]:
        out: dict[str, float | str] = {
            "decode_seconds": self.decode_seconds,
            "inference_seconds": self.inference_seconds,
        }
        if self.shots_seconds is not None:
            out["shots_seconds"] = self.shots_seconds
        if self.shots_backend is not None:
            out["shots_backend"] = self.shots_backend
        if self.explain_seconds is not None:
            out["explain_seconds"] = self.explain_seconds
        return out


@dataclass(frozen=True)
class Provenance:
    """What made the results, so two results can be compared (or told apart)."""

    model: str
    weights_file: str
    weights_sha256: str
    preprocessing_hash: str
    versions: Mapping[str, str]
    backend: str
    backend_reason: str
    timings: Timings
    explain_backend: str | None = None
    """The backend that computed the explanations (always the PyTorch model: it needs a backward pass)."""
    explain_note: str | None = None
    """Why the segments were not explained though the job asked (the model's family has no method)."""

    def to_dict(self) -> dict[str, Any]:
        out = {
            "model": self.model,
            "weights_file": self.weights_file,
            "weights_sha256": self.weights_sha256,
            "preprocessing_hash": self.preprocessing_hash,
            "versions": dict(self.versions),
            "backend": self.backend,
            "backend_reason": self.backend_reason,
            "timings": self.timings.to_dict(),
        }
        if self.explain_backend is not None:
            out["explain_backend"] = self.explain_backend
        if self.explain_note is not None:
            out["explain_note"] = self.explain_note
        return out


class Extra(Protocol):
    """Members a task adds to the document (detection: ``detection_results``, which uses this module)."""

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class AnalysisResult:
    """The results document stored for a job and returned by the API."""

    model: str
    labelset: str
    options: Mapping[str, Any]
    """The options actually used (``plan.effective_options``)."""
    video: VideoInfo
    segments: tuple[SegmentResult, ...]
    summary: tuple[Label, ...]
    runs: tuple[Run, ...]
    provenance: Provenance
    task: str = "classification"
    """How scores were made: "classification" (softmax, one label a moment) or "multilabel"."""
    shots: tuple[Shot, ...] | None = None
    """The video's shots, when the job asked for them (``detect_shots``)."""
    explanations: tuple[Explanation, ...] | None = None
    """Why each segment got its labels, when the job asked (``explain``)."""
    detection: Extra | None = None
    """A detection model's people, their actions and tracks (``detection_results.DetectionOutput``)."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (the job store's and every API format's input)."""
        out = {
            "model": self.model,
            "labelset": self.labelset,
            "task": self.task,
            "options": dict(self.options),
            "video": self.video.to_dict(),
            "segments": [segment.to_dict() for segment in self.segments],
            "summary": [label.to_dict() for label in self.summary],
            "runs": [run.to_dict() for run in self.runs],
            "provenance": self.provenance.to_dict(),
        }
        if self.shots is not None:
            out["shots"] = [shot.to_dict() for shot in self.shots]
        if self.explanations is not None:
            out["explanations"] = [item.to_dict() for item in self.explanations]
        if self.detection is not None:
            out.update(self.detection.to_dict())
        return out


def preprocessing_hash(spec: ModelSpec, options: dict[str, Any]) -> str:
    """Identifies everything that shapes the model's input, so results can be compared."""
    clip_spec = {key: getattr(spec, key) for key in _CLIP_SPEC_FIELDS}
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
