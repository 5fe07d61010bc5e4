"""The random backdrop of a synthetic scene: texture, fixed grain and static distractor shapes.

It is drawn once per scene and never changes, so it carries no class information:
only how the foreground objects change over time does. Distractors come from the
objects' own shape family, so "a shape is there" means nothing either.
"""

from __future__ import annotations

import math

import numpy as np

from app.demo.raster import FloatArray, polygon_alpha, upsample
from app.demo.shapes import random_outline, rotate
from app.demo.stage import Stage


def make_background(rng: np.random.Generator, stage: Stage) -> FloatArray:
    """RGB float (H, W, 3) backdrop in 0..255; everything outside the stage is dimmed."""
    h, w = stage.height, stage.width
    base = rng.uniform(70.0, 180.0, size=3)
    coarse = rng.normal(0.0, 28.0, size=(int(rng.integers(3, 7)), int(rng.integers(3, 7)), 3))
    cells = int(rng.integers(8, 28))
    texture = rng.normal(0.0, rng.uniform(6.0, 22.0), size=(cells, cells, 1))
    bg = base.astype(np.float32)[None, None, :] + upsample(coarse, h, w) + upsample(texture, h, w)
    grain = np.float32(rng.uniform(0.0, 7.0))
    bg += rng.standard_normal(size=(h, w, 1), dtype=np.float32) * grain  # fixed grain
    for _ in range(int(rng.integers(0, 4))):
        _, verts = random_outline(rng)
        verts = rotate(verts * rng.uniform(0.5, 1.0), float(rng.uniform(0, 2 * math.pi)))
        pix = stage.to_pixels(verts + rng.uniform(0.1, 0.9, size=2))
        colour = rng.uniform(0.0, 255.0, size=3).astype(np.float32)
        strength = float(rng.uniform(0.25, 0.7))
        x_lo, x_hi = max(0, math.floor(pix[:, 0].min()) - 1), min(w, math.ceil(pix[:, 0].max()) + 1)
        y_lo, y_hi = max(0, math.floor(pix[:, 1].min()) - 1), min(h, math.ceil(pix[:, 1].max()) + 1)
        if x_lo >= x_hi or y_lo >= y_hi:
            continue
        xs = np.arange(x_lo, x_hi, dtype=np.float32) + 0.5
        ys = np.arange(y_lo, y_hi, dtype=np.float32) + 0.5
        alpha = np.float32(strength) * polygon_alpha(pix, xs, ys)[..., None]
        region = bg[y_lo:y_hi, x_lo:x_hi]
        bg[y_lo:y_hi, x_lo:x_hi] = region * (1 - alpha) + colour * alpha
    # Dim everything outside the stage (what a centre crop drops anyway).
    outside = np.ones((h, w), dtype=bool)
    outside[stage.rows, stage.columns] = False
    bg[outside] *= np.float32(0.45)
    out: FloatArray = np.clip(bg, 0.0, 255.0)
    return out
