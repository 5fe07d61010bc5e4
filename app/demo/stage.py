"""The stage: the centred square of a frame on which all synthetic geometry lives.

Its side is ``min(width, height)``, which is exactly what a short-side-scale +
centre-crop model sees. Outside it (the pillar/letter box of non-square frames)
the background is dimmed and objects are never drawn, so no part of a class's
evidence is cropped away. Positions and sizes elsewhere in ``app.demo`` are in
stage units (1.0 = stage side, origin at the stage's top-left corner).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.demo.shapes import Vertices


@dataclass(frozen=True)
class Stage:
    """Where the stage sits in a ``width`` x ``height`` frame."""

    width: int
    height: int

    @property
    def side(self) -> int:
        """Stage side in pixels."""
        return min(self.width, self.height)

    @property
    def x0(self) -> float:
        """Left edge of the stage, in (sub-)pixels."""
        return (self.width - self.side) / 2.0

    @property
    def y0(self) -> float:
        """Top edge of the stage, in (sub-)pixels."""
        return (self.height - self.side) / 2.0

    @property
    def left(self) -> int:
        """First pixel column of the stage."""
        return round(self.x0)

    @property
    def top(self) -> int:
        """First pixel row of the stage."""
        return round(self.y0)

    @property
    def rows(self) -> slice:
        """Pixel rows of the stage."""
        return slice(self.top, self.top + self.side)

    @property
    def columns(self) -> slice:
        """Pixel columns of the stage."""
        return slice(self.left, self.left + self.side)

    def to_pixels(self, vertices: Vertices) -> Vertices:
        """Stage-unit points (N, 2) as pixel coordinates in the frame."""
        out = vertices * self.side
        out[:, 0] += self.x0
        out[:, 1] += self.y0
        return out
