"""Deterministic synthetic motion clips: the known-answer data behind the demo model.

Zoo weights cannot be fetched offline, so the service ships a small model trained
on these clips (``scripts/train_demo_model.py``). The same generator writes the
test videos, so "right labels at the right times" is checkable end to end.

A scene is one to three foreground objects, all doing what the script says, each
at its own speed / turn rate / flash rate, over a random textured, noisy backdrop
with static distractor shapes: colour, shape and "something is there" carry no
class information, only how the objects change over time. In a scripted video the
objects persist: position, angle and look carry over between parts.

This module draws the random numbers in a fixed order from ``seed`` and puts the
pieces together; the pieces live next to it: the label catalogue
(:mod:`app.demo.classes`), outlines (:mod:`~app.demo.shapes`), the stage
(:mod:`~app.demo.stage`), backdrop (:mod:`~app.demo.background`), object looks
(:mod:`~app.demo.looks`), tracks over time (:mod:`~app.demo.motion`), drawing
(:mod:`~app.demo.drawing`, :mod:`~app.demo.raster`) and H.264 (:mod:`~app.demo.video`).
Changing any of them changes the training data: retrain the demo model.

Only numpy is imported at module level; PyAV is imported where videos are written
or read, and torch never (this module also writes test videos for the API).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from app.demo.drawing import Patch, object_patches
from app.demo.looks import make_look
from app.demo.motion import ObjectState, plan_track, state_at
from app.demo.raster import FloatArray, Frame
from app.demo.scene import Scene, check_frames, check_parts, part_index

OBJECTS_RANGE = (1, 3)
"""Inclusive range of the number of foreground objects; all of them follow the script."""


class SyntheticScene(Scene):
    """A video of objects following ``script``: consecutive ``(label, seconds)`` parts.

    Everything is derived from ``seed``; ``frame(k)`` renders frame ``k`` (time ``k / fps``)
    independently of any other frame.
    """

    def __init__(
        self,
        script: Sequence[tuple[str, float]],
        *,
        fps: int = 30,
        width: int = 160,
        height: int = 120,
        seed: int = 0,
    ) -> None:
        if not script:
            raise ValueError("script must have at least one part")
        check_frames(fps, width, height)
        check_parts(script)
        # One generator, drawn from in this order: the order is part of the known answer.
        rng = self._start(fps, width, height, seed, 0)
        count = int(rng.integers(OBJECTS_RANGE[0], OBJECTS_RANGE[1] + 1))
        self.looks = [make_look(rng, self.background, self.stage) for _ in range(count)]
        self.tracks = [plan_track(rng, script, look.radius, look.wrap) for look in self.looks]
        self.parts = self.tracks[0]
        self.duration = self.parts[-1].end
        self.frame_count = round(self.duration * fps)

    def part_at(self, index: int) -> int:
        """Index into the script of the part that frame ``index`` belongs to."""
        return part_index(self.parts, index / self.fps)

    def label_at(self, index: int) -> str:
        """Scripted class of frame ``index``."""
        return self.parts[self.part_at(index)].label

    @property
    def object_count(self) -> int:
        """Number of foreground objects (all follow the script, each with its own speed etc.)."""
        return len(self.looks)

    def state(self, index: int, obj: int = 0) -> ObjectState:
        """State of object ``obj`` at frame ``index``."""
        return state_at(self.tracks[obj][self.part_at(index)], index / self.fps)

    def object_alpha(self, index: int, obj: int | None = None) -> FloatArray:
        """Coverage (H, W) of object ``obj`` (None: all objects) in frame ``index``; zero while flashed off."""
        alpha = np.zeros((self.height, self.width), dtype=np.float32)
        for i in range(self.object_count) if obj is None else (obj,):
            for patch in self._patches(i, index / self.fps):
                ys, xs = patch.rows, patch.columns
                np.maximum(alpha[ys, xs], patch.coverage, out=alpha[ys, xs])
        return alpha

    def _patches(self, obj: int, t: float) -> Iterator[Patch]:
        part = self.tracks[obj][part_index(self.parts, t)]
        return object_patches(self.stage, self.looks[obj], state_at(part, t), part.wrap)


def render_frames(
    label: str, seconds: float, fps: int = 30, width: int = 160, height: int = 120, seed: int = 0
) -> Iterator[Frame]:
    """Frames (RGB uint8, H x W x 3) of a ``seconds``-long clip showing class ``label``."""
    return SyntheticScene([(label, seconds)], fps=fps, width=width, height=height, seed=seed).frames()


def write_scripted_video(
    path: str | Path,
    script: Sequence[tuple[str, float]],
    fps: int = 30,
    width: int = 160,
    height: int = 120,
    seed: int = 0,
    *,
    crf: int = 20,
) -> None:
    """Write an H.264 (libx264, yuv420p, ultrafast) mp4 whose consecutive parts follow ``script``.

    ``script`` is ``[(label, seconds), ...]``, e.g. ``[("moving right", 4.0), ("static", 4.0)]``;
    part ``i`` covers ``[sum(seconds[:i]), sum(seconds[:i+1]))`` of the video. The
    objects and background persist across parts (see the module docstring).
    """
    SyntheticScene(script, fps=fps, width=width, height=height, seed=seed).write(path, crf)
