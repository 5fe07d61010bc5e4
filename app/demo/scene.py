"""What every demo scene shares (one script, actors, detection): the checks of its scripts,
the stage with its backdrop and sensor noise drawn first from the seed's stream, and frames
painted object by object, then exposed and written as H.264.

The order of the random draws is part of the known answers: a scene draws its backdrop and
noise level here, then its looks and tracks, from the generator :meth:`Scene._start` returns.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from app.demo.background import make_background
from app.demo.classes import class_id
from app.demo.drawing import Patch, expose, paint
from app.demo.looks import Look
from app.demo.motion import Part
from app.demo.raster import Frame
from app.demo.stage import Stage
from app.demo.video import encode_h264

Script = Sequence[tuple[str, float]]
"""Consecutive ``(label, seconds)`` parts of one object."""


def check_frames(fps: int, width: int, height: int) -> None:
    if fps <= 0 or width < 16 or height < 16:
        raise ValueError("fps must be positive and frames at least 16x16")


def check_parts(script: Script) -> None:
    """Every part a known label lasting a positive time (``class_id`` raises on a bad label)."""
    for label, seconds in script:
        class_id(label)
        if not seconds > 0:
            raise ValueError(f"part {label!r} must last a positive number of seconds")


def check_scripts(scripts: Sequence[Script], fps: int, width: int, height: int, noun: str) -> None:
    """Scripts of several objects (``noun``: what the messages call one): each with a part,
    all lasting equally long."""
    if not scripts or not all(scripts):
        raise ValueError(f"need at least one {noun}, each with at least one part")
    check_frames(fps, width, height)
    lengths = {round(sum(seconds for _, seconds in script), 6) for script in scripts}
    if len(lengths) != 1:
        raise ValueError(f"every {noun}'s script must last equally long, got {sorted(lengths)} s")
    for script in scripts:
        check_parts(script)


def part_index(parts: Sequence[Part], t: float) -> int:
    """The part going on at ``t`` seconds (the last one from its end on)."""
    for i, part in enumerate(parts):
        if t < part.end:
            return i
    return len(parts) - 1


class Scene(ABC):
    """A scene's frames: backdrop, each object's patches in order, per-frame sensor noise.
    A subclass calls :meth:`_start`, then sets ``looks``, its tracks and ``frame_count``."""

    fps: int
    width: int
    height: int
    seed: int
    stage: Stage
    background: np.ndarray
    noise_sigma: float
    looks: list[Look]
    frame_count: int

    def _start(self, fps: int, width: int, height: int, seed: int, stream: int) -> np.random.Generator:
        """Set the stage, backdrop and noise level from stream ``stream`` of ``seed``; the
        generator, for the scene's next draws."""
        self.fps, self.width, self.height, self.seed = fps, width, height, seed
        self.stage = Stage(width, height)
        rng = np.random.default_rng([seed, stream])
        self.background = make_background(rng, self.stage)
        self.noise_sigma = float(rng.uniform(0.0, 8.0))
        return rng

    @abstractmethod
    def _patches(self, obj: int, t: float) -> Iterable[Patch]:
        """Object ``obj``'s on-stage patches at ``t`` seconds."""

    def frame(self, index: int) -> Frame:
        """RGB uint8 (H, W, 3) frame ``index`` (time ``index / fps``): backdrop, objects (in
        order), per-frame sensor noise."""
        t = index / self.fps
        canvas = self.background.copy()
        for obj, look in enumerate(self.looks):
            for patch in self._patches(obj, t):
                paint(canvas, look, patch)
        return expose(canvas, self.noise_sigma, self.seed, index)

    def frames(self) -> Iterator[Frame]:
        """All frames in order."""
        for k in range(self.frame_count):
            yield self.frame(k)

    def write(self, path: str | Path, crf: int, *, rotation: int = 0) -> None:
        """The frames as an H.264 mp4 (``rotation``: its display rotation, degrees)."""
        encode_h264(self.frames(), str(path), self.fps, self.width, self.height, crf, rotation=rotation)
