"""Drawing a synthetic frame: objects over the backdrop, then per-frame sensor noise.

Objects are drawn as bounding-box patches, not whole frames, which keeps rendering
cheap, and never outside the stage. Sensor noise is seeded by ``(seed, frame
index)``, so any frame can be rendered on its own (training samples windows) and
still be bit-identical.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from app.demo.looks import Look
from app.demo.motion import ObjectState
from app.demo.raster import FloatArray, Frame, polygon_alpha
from app.demo.shapes import rotate
from app.demo.stage import Stage


@dataclass(frozen=True)
class Patch:
    """One on-stage copy of an object: its bounding box, coverage and pattern mix there."""

    rows: slice
    columns: slice
    coverage: FloatArray  # 0..1, anti-aliased
    mix: FloatArray  # 0..1: share of the look's second colour


def object_patches(stage: Stage, look: Look, state: ObjectState, wrap: float) -> Iterator[Patch]:
    """Each on-stage copy of an object with ``look`` in ``state``; none while flashed off.

    A wrapping object has a copy one ``wrap`` period away; copies never overlap.
    """
    if not state.visible:
        return
    verts = rotate(look.vertices, state.angle)
    cos, sin = math.cos(state.angle), math.sin(state.angle)
    freq = 2 * math.pi / look.period
    shifts = (-wrap, 0.0, wrap)
    sx0, sy0 = stage.left, stage.top
    for ox in shifts:
        for oy in shifts:
            pix = stage.to_pixels(verts + np.array([state.x + ox, state.y + oy]))
            x_lo = max(sx0, math.floor(pix[:, 0].min()) - 1)
            x_hi = min(sx0 + stage.side, math.ceil(pix[:, 0].max()) + 1)
            y_lo = max(sy0, math.floor(pix[:, 1].min()) - 1)
            y_hi = min(sy0 + stage.side, math.ceil(pix[:, 1].max()) + 1)
            if x_lo >= x_hi or y_lo >= y_hi:
                continue
            xs = np.arange(x_lo, x_hi, dtype=np.float32) + 0.5
            ys = np.arange(y_lo, y_hi, dtype=np.float32) + 0.5
            alpha = polygon_alpha(pix, xs, ys)
            # Pattern in object coordinates (it moves and turns with the object).
            sx = (xs[None, :] - stage.x0) / stage.side - (state.x + ox)
            sy = (ys[:, None] - stage.y0) / stage.side - (state.y + oy)
            u, v = cos * sx + sin * sy, -sin * sx + cos * sy
            mix = 0.5 + 0.5 * np.sin(freq * u + look.phase[0]) * np.sin(freq * v + look.phase[1])
            yield Patch(slice(y_lo, y_hi), slice(x_lo, x_hi), alpha, mix.astype(np.float32))


def paint(canvas: FloatArray, look: Look, patch: Patch) -> None:
    """Blend ``patch`` of an object with ``look`` over ``canvas`` (float RGB, in place)."""
    ys, xs, alpha, mix = patch.rows, patch.columns, patch.coverage, patch.mix
    surface = look.colour * (1.0 - mix[..., None]) + look.colour2 * mix[..., None]
    canvas[ys, xs] = canvas[ys, xs] * (1.0 - alpha[..., None]) + surface * alpha[..., None]


def expose(canvas: FloatArray, noise_sigma: float, seed: int, index: int) -> Frame:
    """Frame ``index`` as the sensor delivers it: ``canvas`` plus its own noise, as RGB uint8.

    ``canvas`` is changed in place.
    """
    if noise_sigma > 0:
        noise_rng = np.random.default_rng([seed, 1, index])
        canvas += noise_rng.standard_normal(size=canvas.shape, dtype=np.float32) * np.float32(noise_sigma)
    np.clip(canvas, 0.0, 255.0, out=canvas)
    out: Frame = np.rint(canvas).astype(np.uint8)
    return out
