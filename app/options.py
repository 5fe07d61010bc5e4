"""Per-job analysis options: validated once at submission, echoed in the results."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MIN_SEGMENT_SECONDS = 0.01
"""The shortest segment or stride: one frame period at 100 fps. Shorter ones only repeat the
same frames (every clip is the model's native window, seconds long) and multiply the work;
a denormal one once overflowed the planner's segment count."""


class JobOptions(BaseModel):
    """How a video is cut into segments and how each segment is scored.

    ``segment_seconds``/``stride_seconds`` left unset mean "the model's default"
    (its native clip duration, rounded); the engine fills them in.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    segment_seconds: float | None = Field(default=None, ge=MIN_SEGMENT_SECONDS, le=3600)
    stride_seconds: float | None = Field(default=None, ge=MIN_SEGMENT_SECONDS, le=3600)
    clips_per_segment: int = Field(default=1, ge=1, le=10)
    crops: Literal[1, 3] = 1
    start: float = Field(default=0.0, ge=0)
    end: float | None = Field(default=None, gt=0)
    top_k: int = Field(default=5, ge=1, le=50)
    min_score: float | None = Field(default=None, ge=0, le=1)
    """Labels scoring below it are dropped; unset: the model's default (``ModelSpec.min_score``:
    0.5 for a multi-label model, 0.0 for a classifier). Results echo the value used."""

    @model_validator(mode="after")
    def _range_is_ordered(self) -> JobOptions:
        if self.end is not None and self.end <= self.start:
            raise ValueError("end must be greater than start")
        return self
