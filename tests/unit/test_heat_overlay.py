"""``overlay=heatmap``'s frame by frame choices (``heat_overlay.py``): which segment's map a frame
gets (the labels' rule: the newest segment that has started, until it ends), the map between
its steps, and the blend (the PNGs' colours, only where the map is hot)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from app.analysis.heat_overlay import HeatOverlay


def item(segment: int, times: list[float], data: list[Any]) -> dict[str, Any]:
    return {"segment": segment, "label": "x", "class_id": 1, "method": "hirescam", "frames": [],
            "heatmap": {"t": len(times), "h": 1, "w": 2, "times": times, "data": data}}  # fmt: skip


SEGMENTS = [
    {"index": 0, "start": 0.0, "end": 2.0},
    {"index": 1, "start": 1.0, "end": 3.0},  # overlaps 0: takes over at 1.0
    {"index": 2, "start": 4.0, "end": 5.0},  # after a gap, not explained
]
MAPS = [
    item(0, [0.5, 1.5], [[[0.0, 1.0]], [[1.0, 0.0]]]),
    item(1, [2.0], [[[0.5, 0.5]]]),
    item(1, [2.0], [[[0.9, 0.9]]]),  # a second label of segment 1: the first is shown
]


@pytest.mark.parametrize(
    ("t", "segment"),
    [(0.0, 0), (0.99, 0), (1.0, 1), (2.5, 1), (3.0, None), (3.5, None), (4.2, 2), (-1.0, None)],
)
def test_a_frame_gets_the_segment_its_label_is_shown_for(t: float, segment: int | None) -> None:
    assert HeatOverlay(MAPS, SEGMENTS).segment_at(t) == segment


def test_the_map_moves_between_its_steps_and_holds_at_the_ends() -> None:
    overlay = HeatOverlay(MAPS, SEGMENTS)
    assert overlay.grid_at(0.2) == pytest.approx(np.array([[0.0, 1.0]]))
    assert overlay.grid_at(0.75) == pytest.approx(np.array([[0.25, 0.75]]))
    assert overlay.grid_at(1.2) == pytest.approx(np.array([[0.5, 0.5]])), "segment 1's first label"
    assert overlay.grid_at(4.5) is None, "segment 2 has no map"


def test_the_blend_tints_where_the_map_is_hot_and_nowhere_else() -> None:
    overlay = HeatOverlay(MAPS, SEGMENTS)
    frame = np.full((40, 80, 3), 100, dtype=np.uint8)
    assert overlay.apply(frame, 3.5) is frame, "no map: the frame as it was"
    tinted = overlay.apply(frame, 0.2).astype(int)  # map [[0, 1]]: the right half is hot
    assert tinted.shape == frame.shape
    assert (tinted[:, -5:, 0] > 150).all() and (tinted[:, -5:, 2] < 60).all()
    assert (tinted[:, :5] == 100).all(), "cold cells keep the frame"
