"""Outlines of the synthetic objects: the shape family, their sizes and turning them.

Every shape is elongated or asymmetric (no circles or squares), so rotation is
always visible. Background distractors come from the same family, so "a shape is
present" carries no class information. Outlines are in stage units (1.0 = stage
side), centred on the origin with the long axis along x.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

HALF_LENGTH_RANGE = (0.12, 0.22)
"""Half of the object's long side, in stage units."""
ASPECT_RANGE = (1.7, 2.5)
"""Long side / short side of the object."""

SHAPES = ("rectangle", "ellipse", "triangle", "cross", "ell")
"""The shape family, in the order a random draw indexes it."""

Vertices = npt.NDArray[np.float64]
"""Polygon vertices, shape (N, 2), as (x, y)."""


def polygon(shape: str, half_length: float, aspect: float) -> Vertices:
    """Vertices (N, 2) of an object centred on the origin, long axis along x."""
    a, b = half_length, half_length / aspect
    if shape == "rectangle":
        pts = [(-a, -b), (a, -b), (a, b), (-a, b)]
    elif shape == "ellipse":
        angles = np.linspace(0.0, 2 * math.pi, 24, endpoint=False)
        return np.stack([a * np.cos(angles), b * np.sin(angles)], axis=1)
    elif shape == "triangle":
        # Isosceles "arrow head"; shifted so the centroid sits on the origin.
        pts = [(a + a / 3, 0.0), (-a + a / 3, 1.3 * b), (-a + a / 3, -1.3 * b)]
    elif shape == "cross":
        # Plus sign with unequal arms (long arm along x).
        t, c = 0.45 * b, 0.55 * a
        pts = [(-a, -t), (-t, -t), (-t, -c), (t, -c), (t, -t), (a, -t)]
        pts += [(a, t), (t, t), (t, c), (-t, c), (-t, t), (-a, t)]
    elif shape == "ell":
        t = 0.9 * b
        pts = [(-a, -b), (a, -b), (a, -b + t), (-a + t, -b + t), (-a + t, b + 0.6 * a), (-a, b + 0.6 * a)]
        arr = np.array(pts, dtype=np.float64)
        centred: Vertices = arr - arr.mean(axis=0)
        return centred
    else:  # pragma: no cover - guarded by SHAPES
        raise ValueError(shape)
    return np.array(pts, dtype=np.float64)


def random_outline(rng: np.random.Generator) -> tuple[str, Vertices]:
    """A shape drawn from :data:`SHAPES` with a random size and aspect: (shape name, vertices)."""
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    half_length = float(rng.uniform(*HALF_LENGTH_RANGE))
    aspect = float(rng.uniform(*ASPECT_RANGE))
    return shape, polygon(shape, half_length, aspect)


def rotate(vertices: Vertices, angle: float) -> Vertices:
    """``vertices`` turned by ``angle`` radians about the origin."""
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]], dtype=np.float64)
    out: Vertices = vertices @ rot.T
    return out
