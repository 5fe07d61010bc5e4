"""A detection job's results as typed values: people per keyframe, and tracks over time.

``detections``: one entry per keyframe and person (box normalised 0..1 in display
orientation, the detector's score or None for the caller's own boxes, the track it joined,
its action labels). ``tracks``: the same people linked across keyframes (``tracker.py``),
each with runs of the actions it kept. No torch here, plain Python numbers only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.analysis.detection_types import Box
from app.analysis.results import Label, Run

BOX_DECIMALS = 5
"""Normalised corners to 1e-5 of the frame: below a pixel of an 8K frame."""


@dataclass(frozen=True)
class PersonDetection:
    """One person on one keyframe: where, how sure the detector was, which track, what they do."""

    time: float
    box: Box
    person_score: float | None
    """The detector's score; None for a box the caller gave (``boxes``)."""
    track_id: int
    labels: tuple[Label, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": float(self.time),
            "box": [round(float(v), BOX_DECIMALS) for v in self.box],
            "person_score": None if self.person_score is None else float(self.person_score),
            "track_id": self.track_id,
            "labels": [label.to_dict() for label in self.labels],
        }


@dataclass(frozen=True)
class Track:
    """A person followed over keyframes: first and last keyframe times, and per action the
    keyframe runs where it was kept (``Run``: mean score over the run)."""

    id: int
    start: float
    end: float
    runs: tuple[Run, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "start": float(self.start),
            "end": float(self.end),
            "runs": [run.to_dict() for run in self.runs],
        }


@dataclass(frozen=True)
class DetectionOutput:
    """Everything a detection job adds to the results document."""

    detections: tuple[PersonDetection, ...]
    tracks: tuple[Track, ...]
    keyframes: tuple[float, ...]
    """Every keyframe's time, with or without people (a job without people has these only)."""
    person_source: str
    """``boxes`` (the caller's) or the person detector's catalog name."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "detections": [d.to_dict() for d in self.detections],
            "tracks": [t.to_dict() for t in self.tracks],
            "keyframes": [float(t) for t in self.keyframes],
            "person_source": self.person_source,
        }
