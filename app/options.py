"""Per-job analysis options: validated once at submission, echoed in the results."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.box_options import TimedBoxes, check_box_times

MIN_SEGMENT_SECONDS = 0.01
"""The shortest segment or stride: one frame period at 100 fps. Shorter ones only repeat the
same frames (every clip is the model's native window, seconds long) and multiply the work;
a denormal one once overflowed the planner's segment count."""
MAX_RANGES = 1000
"""The most time ranges one job may name (``segments``)."""

Bound = Annotated[float, Field(ge=0, allow_inf_nan=False)]
TimeRange = tuple[Bound, Bound]
"""``[start, end)`` in seconds from the video's start."""

DETECTION_OPTIONS = ("boxes", "keyframe_seconds", "person_min_score")
"""Options only detection models read; other models' results do not echo them."""

RANGES_EXCLUDE = ("segment_seconds", "stride_seconds", "start", "end", "segmentation")
"""Options that cut the video some other way, so they cannot come with ``segments``
(``segmentation`` counts when it is ``shots``)."""
SHOTS_EXCLUDE = ("segment_seconds", "stride_seconds", "segments")
"""Options that cut the video some other way, so they cannot come with ``segmentation=shots``."""


class Segmentation(StrEnum):
    """How the video is cut into segments: fixed windows, or one segment per shot (split
    when longer than ``max_segment_seconds``; ``analysis/shot_plan.py``)."""

    FIXED = "fixed"
    SHOTS = "shots"


class JobOptions(BaseModel):
    """How a video is cut into segments and how each segment is scored.

    ``segment_seconds``/``stride_seconds`` left unset mean "the model's default"
    (its native clip duration, rounded); the engine fills them in. ``segments`` names the
    segments instead: each ``[start, end]`` range is one segment, in the order given.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    segment_seconds: float | None = Field(default=None, ge=MIN_SEGMENT_SECONDS, le=3600)
    stride_seconds: float | None = Field(default=None, ge=MIN_SEGMENT_SECONDS, le=3600)
    segments: tuple[TimeRange, ...] | None = None
    """Chosen time ranges, each analysed as one segment (overlaps and any order allowed);
    whether they lie inside the video is checked against its duration (``segmenting``)."""
    clips_per_segment: int | None = Field(default=None, ge=1, le=10)
    """Unset: 1 with fixed windows; with shots, the segment's length over the model's clip."""
    crops: Literal[1, 3] = 1
    start: float = Field(default=0.0, ge=0)
    end: float | None = Field(default=None, gt=0)
    top_k: int = Field(default=5, ge=1, le=50)
    min_score: float | None = Field(default=None, ge=0, le=1)
    """Labels scoring below it are dropped; unset: the model's default (``ModelSpec.min_score``:
    0.5 for a multi-label model, 0.0 for a classifier). Results echo the value used."""
    segmentation: Segmentation = Segmentation.FIXED
    max_segment_seconds: float = Field(default=10.0, ge=MIN_SEGMENT_SECONDS, le=3600)
    """With shots: a longer shot is split into equal parts no longer than this."""
    detect_shots: bool = False
    """Also find the video's shots (TransNetV2, ``analysis/shots.py``) in the same decode pass."""
    explain: bool = False
    """Also explain each segment's top label (Grad-CAM, ``analysis/explain.py``): a backward
    pass of the PyTorch model per segment."""
    boxes: tuple[TimedBoxes, ...] | None = None
    """Detection models: the caller's person boxes per time (``box_options``); no detector runs
    and the keyframes are these times."""
    keyframe_seconds: float = Field(default=1.0, ge=0.04, le=3600)
    """Detection models: one keyframe (people found and labelled) every this many seconds."""
    person_min_score: float = Field(default=0.8, ge=0, le=1)
    """Detection models: people the detector is less sure of are left out."""

    @field_validator("boxes")
    @classmethod
    def _box_times(cls, boxes: tuple[TimedBoxes, ...] | None) -> tuple[TimedBoxes, ...] | None:
        return None if boxes is None else check_box_times(boxes)

    @field_validator("segments")
    @classmethod
    def _ranges_are_usable(cls, ranges: tuple[TimeRange, ...] | None) -> tuple[TimeRange, ...] | None:
        if ranges is None:
            return None
        if not ranges:
            raise ValueError("give at least one [start, end] range, or leave segments out")
        if len(ranges) > MAX_RANGES:
            raise ValueError(f"at most {MAX_RANGES:,} ranges per job, got {len(ranges):,}")
        for i, (begin, stop) in enumerate(ranges):
            if not stop > begin:
                raise ValueError(f"range {i} [{begin:g}, {stop:g}]: end must be greater than start")
            if stop - begin < MIN_SEGMENT_SECONDS or not math.isfinite(stop - begin):
                raise ValueError(f"range {i} [{begin:g}, {stop:g}] is shorter than {MIN_SEGMENT_SECONDS} s")
        return ranges

    @model_validator(mode="after")
    def _range_is_ordered(self) -> JobOptions:
        if self.end is not None and self.end <= self.start:
            raise ValueError("end must be greater than start")
        if self.segments is not None and (clashing := self.ranges_conflicts()):
            raise ValueError(
                f"segments conflicts with {', '.join(clashing)}: the ranges are the segments "
                f"(leave {' and '.join(clashing)} out, or segments)"
            )
        if self.segmentation is Segmentation.SHOTS and (clashing := self.shots_conflicts()):
            raise ValueError(
                f"segmentation=shots conflicts with {', '.join(clashing)}: the shots are the segments "
                f"(leave {' and '.join(clashing)} out, or segmentation=shots)"
            )
        return self

    def ranges_conflicts(self) -> list[str]:
        """The options in ``RANGES_EXCLUDE`` this job sets (``start`` counts when not 0)."""
        return [name for name in RANGES_EXCLUDE if getattr(self, name) not in (None, 0.0, Segmentation.FIXED)]

    def shots_conflicts(self) -> list[str]:
        """The options in ``SHOTS_EXCLUDE`` this job sets."""
        return [name for name in SHOTS_EXCLUDE if getattr(self, name) is not None]

    @property
    def finds_shots(self) -> bool:
        """Whether the shot detector runs (``detect_shots``, or shots as the segments)."""
        return self.detect_shots or self.segmentation is Segmentation.SHOTS


def parse_ranges(text: str) -> list[list[float]]:
    """``"0:4, 10:12.5"`` (the CLI's and the page's notation) as ``[[0, 4], [10, 12.5]]``;
    ValueError naming the bad part. Bounds are checked by ``JobOptions``."""
    out = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        begin, sep, stop = part.partition(":")
        try:
            if not sep:
                raise ValueError(part)
            out.append([float(begin), float(stop)])
        except ValueError:
            raise ValueError(f"{part!r} is not START:END in seconds (e.g. 0:4,10:12.5)") from None
    if not out:
        raise ValueError("no ranges given (e.g. 0:4,10:12.5)")
    return out
