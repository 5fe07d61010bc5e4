"""The ``boxes`` job option: people the caller already found, so no detector runs.

``[{"time": t, "boxes": [[x1, y1, x2, y2], ...]}, ...]``: seconds from the video's start and
corners normalised to 0..1 of the frame as displayed (rotation applied), the same frame of
reference the results use, so a caller's tracker output goes in as it comes out. Each entry
is one keyframe of a detection job; an entry with no boxes is a keyframe without people.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_BOX_TIMES = 1000
"""The most keyframes (``time`` entries) one job may name."""
MAX_BOXES_PER_TIME = 50
"""The most boxes at one time (AVA keyframes hold at most a few dozen people)."""

Unit = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Corners = tuple[Unit, Unit, Unit, Unit]


class TimedBoxes(BaseModel):
    """The people on the frame shown at ``time``: one box each, ``x1 < x2``, ``y1 < y2``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time: float = Field(ge=0, allow_inf_nan=False)
    boxes: tuple[Corners, ...] = Field(max_length=MAX_BOXES_PER_TIME)

    @field_validator("boxes")
    @classmethod
    def _ordered_corners(cls, boxes: tuple[Corners, ...]) -> tuple[Corners, ...]:
        for i, (x1, y1, x2, y2) in enumerate(boxes):
            if not (x1 < x2 and y1 < y2):
                raise ValueError(f"box {i} [{x1:g}, {y1:g}, {x2:g}, {y2:g}]: need x1 < x2 and y1 < y2")
        return boxes


def check_box_times(entries: tuple[TimedBoxes, ...]) -> tuple[TimedBoxes, ...]:
    """At least one and at most ``MAX_BOX_TIMES`` entries, each time once; sorted by time."""
    if not entries:
        raise ValueError("give at least one {time, boxes} entry, or leave boxes out")
    if len(entries) > MAX_BOX_TIMES:
        raise ValueError(f"at most {MAX_BOX_TIMES:,} box times per job, got {len(entries):,}")
    ordered = tuple(sorted(entries, key=lambda e: e.time))
    for before, after in pairwise(ordered):
        if math.isclose(before.time, after.time, abs_tol=1e-9):
            raise ValueError(f"time {after.time:g} appears twice: give all its boxes in one entry")
    return ordered
