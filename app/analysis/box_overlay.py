"""People's boxes on the annotated video of a detection job: each track in its own colour, with
its actions at that keyframe.

Boxes are known at keyframes only (one a second by default); between two keyframes of the same
track the box moves linearly from one to the other, so it follows a walking person instead of
jumping once a second, and the labels are the nearer keyframe's. Before a track's first and
after its last keyframe its box stays up for half the typical keyframe spacing. The results'
boxes are normalised in display orientation, so they scale straight onto the upright frame.
``static/tracks.js`` draws the page's overlay by the same rule.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Colour = tuple[int, int, int]


@dataclass(frozen=True)
class Keyed:
    """One track at one keyframe."""

    time: float
    box: tuple[float, float, float, float]
    text: str


@dataclass(frozen=True)
class Shown:
    """What is drawn for one track at one instant."""

    track_id: int
    box: tuple[float, float, float, float]
    text: str


def _text(track_id: int, labels: Sequence[dict[str, Any]]) -> str:
    actions = ", ".join(f"{x['label']} {round(100 * float(x['score']))}%" for x in labels[:2])
    return f"#{track_id} {actions}" if actions else f"#{track_id}"


class BoxOverlay:
    """The detections of one job, drawable at any time ``t`` of the video."""

    def __init__(self, detections: Sequence[dict[str, Any]], colour: Callable[[int], Colour]) -> None:
        self.colour = colour
        self.tracks: dict[int, list[Keyed]] = {}
        for d in sorted(detections, key=lambda d: float(d["time"])):
            box = tuple(float(v) for v in d["box"])
            keyed = Keyed(
                float(d["time"]), (box[0], box[1], box[2], box[3]), _text(d["track_id"], d["labels"])
            )
            self.tracks.setdefault(int(d["track_id"]), []).append(keyed)
        times = sorted({float(d["time"]) for d in detections})
        gaps = np.diff(times) if len(times) > 1 else np.array([1.0])
        self.hold = float(np.median(gaps)) / 2
        """How long a box stays up beyond its track's first and last keyframes."""
        self.bridge = 2.5 * float(np.median(gaps))
        """Keyframes further apart than this are not bridged: the track was lost in between."""

    def shown_at(self, t: float) -> list[Shown]:
        """Every track's box and text at ``t`` seconds (interpolated between its keyframes)."""
        out = []
        for track_id, keys in self.tracks.items():
            times = [k.time for k in keys]
            i = bisect_right(times, t)
            before = keys[i - 1] if i > 0 else None
            after = keys[i] if i < len(keys) else None
            if before is not None and after is not None and after.time - before.time <= self.bridge:
                a = (t - before.time) / max(after.time - before.time, 1e-9)
                box = tuple((1 - a) * p + a * q for p, q in zip(before.box, after.box, strict=True))
                text = before.text if a < 0.5 else after.text
                out.append(Shown(track_id, (box[0], box[1], box[2], box[3]), text))
                continue
            near = min(
                (k for k in (before, after) if k is not None and abs(k.time - t) <= self.hold),
                key=lambda k: abs(k.time - t),
                default=None,
            )
            if near is not None:
                out.append(Shown(track_id, near.box, near.text))
        return out

    def apply(self, rgb: np.ndarray, t: float) -> np.ndarray:
        """``rgb`` (H, W, 3) with the boxes and texts shown at ``t``."""
        shown = self.shown_at(t)
        if not shown:
            return rgb
        height, width = rgb.shape[:2]
        image = Image.fromarray(rgb)
        draw = ImageDraw.Draw(image, "RGBA")
        size = max(9, height // 28)
        try:
            font: Any = ImageFont.load_default(size=size)
        except TypeError:  # Pillow without FreeType
            font = ImageFont.load_default()
        line = max(3, round(height / 150))  # yuv420p halves colour resolution: thin lines turn grey
        for item in shown:
            colour = self.colour(item.track_id)
            x1, y1, x2, y2 = (
                item.box[0] * width,
                item.box[1] * height,
                item.box[2] * width,
                item.box[3] * height,
            )
            draw.rectangle((x1, y1, x2, y2), outline=colour, width=line)
            text_w = draw.textlength(item.text, font=font)
            top = y1 - size - 4 if y1 >= size + 4 else y2 + 1
            draw.rectangle((x1, top, x1 + text_w + 6, top + size + 3), fill=(*colour, 200))
            draw.text((x1 + 3, top + 1), item.text, font=font, fill=(0, 0, 0))
        return np.asarray(image)
