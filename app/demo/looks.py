"""How a foreground object looks: its outline, two contrasting colours and a chequer pattern.

Colour, shape and size are random per object, so they carry no class information.
The colours are drawn to stand out from the backdrop, and the chequer pattern makes
the whole surface of an object, not just its outline, change when it moves or
turns: more evidence for a model that averages over the frame (X3D's head does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from app.demo.raster import FloatArray
from app.demo.shapes import Vertices, random_outline
from app.demo.stage import Stage

PATTERN_PERIOD_RANGE = (0.06, 0.12)
"""Period of the chequer pattern on the object surface, in stage units."""


@dataclass(frozen=True)
class Look:
    """One object's appearance; fixed for the whole scene."""

    shape: str
    vertices: Vertices  # stage units, angle 0
    colour: npt.NDArray[np.float32]  # RGB 0..255
    colour2: npt.NDArray[np.float32]  # second colour of the surface pattern
    period: float  # pattern period, stage units
    phase: tuple[float, float]

    @property
    def radius(self) -> float:
        """Farthest vertex from the centre: the object is wholly on stage, at any angle,
        while its centre is at least this far from every edge."""
        return float(np.hypot(self.vertices[:, 0], self.vertices[:, 1]).max())

    @property
    def wrap(self) -> float:
        """Period of the object's wrap-around world, in stage units (the same along x and y).

        The stage plus the object's smallest width (over all angles): whatever its
        angle, an object leaving one edge is already re-entering at the opposite one,
        so it never vanishes, and nothing jumps when a part changes what it does.
        """
        angles = np.linspace(0.0, math.pi, 90, endpoint=False)
        xs = (
            np.cos(angles)[:, None] * self.vertices[None, :, 0]
            - np.sin(angles)[:, None] * self.vertices[None, :, 1]
        )
        return 1.0 + float((xs.max(axis=1) - xs.min(axis=1)).min())


def luma(rgb: npt.NDArray[np.float64] | FloatArray) -> npt.NDArray[np.float64]:
    """Perceived brightness (ITU-R BT.601 weights) of RGB values."""
    return np.asarray(rgb @ np.array([0.299, 0.587, 0.114]), dtype=np.float64)


def make_look(rng: np.random.Generator, background: FloatArray, stage: Stage) -> Look:
    """A random look whose colours stand out from the mean of ``background`` on the stage."""
    shape, vertices = random_outline(rng)
    bg_mean = background[stage.rows, stage.columns].reshape(-1, 3)
    mean = bg_mean.mean(axis=0).astype(np.float64)
    bg_luma = float(luma(mean))
    colour = rng.uniform(0.0, 255.0, size=3)
    for _ in range(500):  # rejection sampling: the object must stand out, and so must its pattern
        colour_luma = float(luma(colour))
        if (
            abs(colour_luma - bg_luma) >= 65
            and np.linalg.norm(colour - mean) >= 100
            and 50 <= colour_luma <= 205
        ):
            break
        colour = rng.uniform(0.0, 255.0, size=3)
    else:  # pragma: no cover - practically unreachable; fall back to max contrast
        colour = np.full(3, 30.0 if bg_luma > 127 else 225.0)
    # The surface pattern goes from the colour further away from the background, so
    # both ends stand out; it makes the whole object area (not only its outline)
    # change as it moves or turns.
    extreme = 255.0 if float(luma(colour)) > bg_luma else 0.0
    colour2 = colour + 0.8 * (extreme - colour)
    return Look(
        shape=shape,
        vertices=vertices,
        colour=colour.astype(np.float32),
        colour2=colour2.astype(np.float32),
        period=float(rng.uniform(*PATTERN_PERIOD_RANGE)),
        phase=(float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(0, 2 * math.pi))),
    )
