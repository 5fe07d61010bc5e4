"""The annotated video's ``overlay=heatmap``: each explained segment's map blended on the frames
its label is shown on, following the map over time.

Which segment a frame belongs to is the labels' rule (``annotate.cues_from``, the WebVTT
track's): the newest segment that has started, until it ends. Its map (the segment's first
explanation: its top label) is interpolated linearly between the steps' ``times`` and held
before the first and after the last, so it moves with the action instead of jumping once a
step. Maps are registered to the displayed frame, which the render scales uniformly, so a
map stretched over the scaled frame lies where the results say (``explain_png.blend``).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

import numpy as np

from app.analysis.explain_png import blend


class HeatOverlay:
    """Blends the map of the segment shown at time ``t`` on a frame."""

    def __init__(self, explanations: Sequence[dict[str, Any]], segments: Sequence[dict[str, Any]]) -> None:
        self.maps: dict[int, tuple[list[float], np.ndarray]] = {}
        for item in explanations:
            heat = item["heatmap"]
            if int(item["segment"]) not in self.maps and heat["times"]:
                self.maps[int(item["segment"])] = (
                    [float(x) for x in heat["times"]],
                    np.asarray(heat["data"], dtype=np.float32),
                )
        ordered = sorted(segments, key=lambda s: (float(s["start"]), int(s["index"])))
        self.starts = [float(s["start"]) for s in ordered]
        self.spans = [(int(s["index"]), float(s["end"])) for s in ordered]

    def segment_at(self, t: float) -> int | None:
        """The segment whose label is shown at ``t`` (None in a gap or before the first)."""
        i = bisect.bisect_right(self.starts, t) - 1
        if i < 0 or t >= self.spans[i][1]:
            return None
        return self.spans[i][0]

    def grid_at(self, t: float) -> np.ndarray | None:
        """The map (h, w) at ``t``, between the two steps around it; None where no map is shown."""
        segment = self.segment_at(t)
        if segment is None or segment not in self.maps:
            return None
        times, data = self.maps[segment]
        k = bisect.bisect_right(times, t) - 1
        if k < 0:
            first: np.ndarray = data[0]
            return first
        if k + 1 >= len(times) or times[k + 1] <= times[k]:
            held: np.ndarray = data[min(k, len(data) - 1)]
            return held
        a = (t - times[k]) / (times[k + 1] - times[k])
        mixed: np.ndarray = (1 - a) * data[k] + a * data[k + 1]
        return mixed

    def apply(self, rgb: np.ndarray, t: float) -> np.ndarray:
        """``rgb`` (uint8, H x W x 3) with the map at ``t`` blended on; unchanged without one."""
        grid = self.grid_at(t)
        if grid is None:
            return rgb
        out: np.ndarray = (blend(rgb, grid) * 255).round().astype(np.uint8)
        return out
