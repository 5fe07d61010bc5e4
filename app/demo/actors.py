"""Scenes where several objects act at once, each following its own script: the known-answer
data behind the multi-label demo model (``demo_motion_multi``).

In :class:`~app.demo.synthetic.SyntheticScene` every object does the same thing, so one
label describes a moment. Here each object (an *actor*) has a script of its own, e.g. one
moving right for 8 s while another flashes from 4 s to 12 s, so a moment has a *set* of
labels: the actions of its actors, ``static`` left out (standing still is no action, and
the backdrop's distractors stand still too). Everything else (backdrop, looks, tracks,
drawing, noise, H.264) is the single-script scene's, drawn from a separate random stream
of the same seed, so the single-label demo data are untouched.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from app.demo.background import make_background
from app.demo.classes import CLASSES, class_id
from app.demo.drawing import expose, object_patches, paint
from app.demo.looks import make_look
from app.demo.motion import Part, plan_track, state_at
from app.demo.raster import Frame
from app.demo.stage import Stage
from app.demo.video import encode_h264

Script = Sequence[tuple[str, float]]
"""Consecutive ``(label, seconds)`` parts of one actor."""

NO_ACTION = "static"
"""The class that names no action: an actor doing it adds no label."""

ACTIONS: tuple[str, ...] = tuple(c for c in CLASSES if c != NO_ACTION)
"""The multi-label demo model's labels, in class-id order: every demo class but ``static``."""

_STREAM = 2
"""Random stream of the seed (``SyntheticScene`` draws from stream 0, its noise from 1)."""


def _part_index(parts: Sequence[Part], t: float) -> int:
    for i, part in enumerate(parts):
        if t < part.end:
            return i
    return len(parts) - 1


class ActorScene:
    """A video of ``len(scripts)`` objects, object ``i`` following ``scripts[i]``.

    Every script must last as long as the first (the video's duration). Derived from
    ``seed`` alone; ``frame(k)`` renders frame ``k`` (time ``k / fps``) on its own.
    """

    def __init__(
        self, scripts: Sequence[Script], *, fps: int = 30, width: int = 160, height: int = 120, seed: int = 0
    ) -> None:
        if not scripts or not all(scripts):
            raise ValueError("need at least one actor, each with at least one part")
        if fps <= 0 or width < 16 or height < 16:
            raise ValueError("fps must be positive and frames at least 16x16")
        lengths = {round(sum(seconds for _, seconds in script), 6) for script in scripts}
        if len(lengths) != 1:
            raise ValueError(f"every actor's script must last equally long, got {sorted(lengths)} s")
        for script in scripts:
            for label, seconds in script:
                class_id(label)
                if not seconds > 0:
                    raise ValueError(f"part {label!r} must last a positive number of seconds")
        self.fps, self.width, self.height, self.seed = fps, width, height, seed
        self.stage = Stage(width, height)
        rng = np.random.default_rng([seed, _STREAM])
        self.background = make_background(rng, self.stage)
        self.noise_sigma = float(rng.uniform(0.0, 8.0))
        self.looks = [make_look(rng, self.background, self.stage) for _ in scripts]
        self.tracks = [
            plan_track(rng, script, look.radius, look.wrap)
            for script, look in zip(scripts, self.looks, strict=True)
        ]
        self.duration = self.tracks[0][-1].end
        self.frame_count = round(self.duration * fps)

    def labels_at(self, index: int) -> frozenset[str]:
        """The actions (labels) going on at frame ``index``: every actor's part but ``static``."""
        t = index / self.fps
        return frozenset(track[_part_index(track, t)].label for track in self.tracks) - {NO_ACTION}

    def frame(self, index: int) -> Frame:
        """RGB uint8 (H, W, 3) frame ``index``: backdrop, actors (in order), per-frame sensor noise."""
        t = index / self.fps
        canvas = self.background.copy()
        for look, track in zip(self.looks, self.tracks, strict=True):
            part = track[_part_index(track, t)]
            for patch in object_patches(self.stage, look, state_at(part, t), part.wrap):
                paint(canvas, look, patch)
        return expose(canvas, self.noise_sigma, self.seed, index)

    def frames(self) -> Iterator[Frame]:
        """All frames in order."""
        for k in range(self.frame_count):
            yield self.frame(k)


def write_actors_video(
    path: str | Path,
    scripts: Sequence[Script],
    fps: int = 30,
    width: int = 160,
    height: int = 120,
    seed: int = 0,
    *,
    crf: int = 20,
) -> None:
    """Write an H.264 mp4 of actors following ``scripts`` (as ``write_scripted_video`` does for one
    script), e.g. ``[[("moving right", 8.0), ("static", 4.0)], [("static", 4.0), ("flashing", 8.0)]]``."""
    scene = ActorScene(scripts, fps=fps, width=width, height=height, seed=seed)
    encode_h264(scene.frames(), str(path), fps, width, height, crf)
