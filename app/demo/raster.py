"""Pixel primitives for the synthetic frames: anti-aliased polygon coverage and smooth upsampling.

Kept apart from what is drawn because these decide how fast frames render (the
training budget) and whether sub-pixel motion is visible at all.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

Frame = npt.NDArray[np.uint8]
"""An RGB uint8 (H, W, 3) video frame."""
FloatArray = npt.NDArray[np.float32]
"""A float32 image or coverage map (0..255 colours, 0..1 coverage)."""


def polygon_alpha(
    vertices: npt.NDArray[np.float64], xs: npt.NDArray[np.floating[Any]], ys: npt.NDArray[np.floating[Any]]
) -> FloatArray:
    """Anti-aliased coverage (0..1) of a polygon (pixel coordinates) at pixel centres ``ys`` x ``xs``.

    Signed distance to the outline, clipped to one pixel: edges stay smooth, so
    sub-pixel motion is visible and the model sees no staircase artefacts.
    Vectorised over the edges (arrays E x h x w) because rendering speed bounds
    how much training data fits in the training budget.
    """
    a = vertices[:, :, None, None]
    e = (np.roll(vertices, -1, axis=0) - vertices)[:, :, None, None]
    ax, ay, ex, ey = a[:, 0], a[:, 1], e[:, 0], e[:, 1]
    px = np.asarray(xs, dtype=np.float64)[None, None, :]
    py = np.asarray(ys, dtype=np.float64)[None, :, None]
    wx, wy = px - ax, py - ay
    h = np.clip((wx * ex + wy * ey) / np.maximum(ex * ex + ey * ey, 1e-12), 0.0, 1.0)
    dist2 = ((wx - ex * h) ** 2 + (wy - ey * h) ** 2).min(axis=0)
    # Even-odd rule: count edges crossed by a ray towards +x.
    crosses = (ay > py) != (ay + ey > py)
    x_at = ax + (py - ay) * ex / np.where(ey == 0, 1.0, ey)
    inside = (crosses & (px < x_at)).sum(axis=0) % 2 == 1
    signed = np.sqrt(dist2) * np.where(inside, 1.0, -1.0)
    alpha: FloatArray = np.clip(signed + 0.5, 0.0, 1.0).astype(np.float32)
    return alpha


def upsample(grid: npt.NDArray[np.float64], height: int, width: int) -> FloatArray:
    """Bilinear upsampling of a coarse (h, w, c) grid to (height, width, c), one axis at a time."""
    gh, gw = grid.shape[:2]
    g = grid.astype(np.float32)
    xs = np.linspace(0.0, gw - 1.0, width, dtype=np.float32)
    x0 = np.minimum(xs.astype(int), gw - 2)
    fx = (xs - x0.astype(np.float32))[None, :, None]
    rows = g[:, x0] * (1 - fx) + g[:, x0 + 1] * fx  # (gh, width, c)
    ys = np.linspace(0.0, gh - 1.0, height, dtype=np.float32)
    y0 = np.minimum(ys.astype(int), gh - 2)
    fy = (ys - y0.astype(np.float32))[:, None, None]
    out: FloatArray = rows[y0] * (1 - fy) + rows[y0 + 1] * fy
    return out
