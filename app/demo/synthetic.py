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

from app.demo.background import make_background
from app.demo.classes import class_id
from app.demo.drawing import Patch, expose, object_patches, paint
from app.demo.looks import make_look
from app.demo.motion import ObjectState, plan_track, state_at
from app.demo.raster import FloatArray, Frame
from app.demo.stage import Stage
from app.demo.video import encode_h264

OBJECTS_RANGE = (1, 3)
"""Inclusive range of the number of foreground objects; all of them follow the script."""


class SyntheticScene:
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
        if fps <= 0 or width < 16 or height < 16:
            raise ValueError("fps must be positive and frames at least 16x16")
        for label, seconds in script:
            class_id(label)
            if not seconds > 0:
                raise ValueError(f"part {label!r} must last a positive number of seconds")
        self.fps, self.width, self.height, self.seed = fps, width, height, seed
        self.stage = Stage(width, height)
        # One generator, drawn from in this order: the order is part of the known answer.
        rng = np.random.default_rng([seed, 0])
        self.background = make_background(rng, self.stage)
        self.noise_sigma = float(rng.uniform(0.0, 8.0))
        count = int(rng.integers(OBJECTS_RANGE[0], OBJECTS_RANGE[1] + 1))
        self.looks = [make_look(rng, self.background, self.stage) for _ in range(count)]
        self.tracks = [plan_track(rng, script, look.radius, look.wrap) for look in self.looks]
        self.parts = self.tracks[0]
        self.duration = self.parts[-1].end
        self.frame_count = round(self.duration * fps)

    def part_at(self, index: int) -> int:
        """Index into the script of the part that frame ``index`` belongs to."""
        t = index / self.fps
        for i, part in enumerate(self.parts):
            if t < part.end:
                return i
        return len(self.parts) - 1

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
            for patch in self._patches(index, i):
                ys, xs = patch.rows, patch.columns
                np.maximum(alpha[ys, xs], patch.coverage, out=alpha[ys, xs])
        return alpha

    def _patches(self, index: int, obj: int) -> Iterator[Patch]:
        part = self.tracks[obj][self.part_at(index)]
        state = state_at(part, index / self.fps)
        return object_patches(self.stage, self.looks[obj], state, part.wrap)

    def frame(self, index: int) -> Frame:
        """RGB uint8 (H, W, 3) frame ``index``: background, objects (in order), per-frame sensor noise."""
        canvas = self.background.copy()
        for obj, look in enumerate(self.looks):
            for patch in self._patches(index, obj):
                paint(canvas, look, patch)
        return expose(canvas, self.noise_sigma, self.seed, index)

    def frames(self) -> Iterator[Frame]:
        """All frames in order."""
        for k in range(self.frame_count):
            yield self.frame(k)


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
    scene = SyntheticScene(script, fps=fps, width=width, height=height, seed=seed)
    encode_h264(scene.frames(), str(path), fps, width, height, crf)
