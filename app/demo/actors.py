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

from app.demo.classes import CLASSES
from app.demo.drawing import Patch, object_patches
from app.demo.looks import make_look
from app.demo.motion import plan_track, state_at
from app.demo.scene import Scene, Script, check_scripts, part_index

NO_ACTION = "static"
"""The class that names no action: an actor doing it adds no label."""

ACTIONS: tuple[str, ...] = tuple(c for c in CLASSES if c != NO_ACTION)
"""The multi-label demo model's labels, in class-id order: every demo class but ``static``."""

_STREAM = 2
"""Random stream of the seed (``SyntheticScene`` draws from stream 0, its noise from 1)."""


class ActorScene(Scene):
    """A video of ``len(scripts)`` objects, object ``i`` following ``scripts[i]``.

    Every script must last as long as the first (the video's duration). Derived from
    ``seed`` alone; ``frame(k)`` renders frame ``k`` (time ``k / fps``) on its own.
    """

    def __init__(
        self, scripts: Sequence[Script], *, fps: int = 30, width: int = 160, height: int = 120, seed: int = 0
    ) -> None:
        check_scripts(scripts, fps, width, height, "actor")
        rng = self._start(fps, width, height, seed, _STREAM)
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
        return frozenset(track[part_index(track, t)].label for track in self.tracks) - {NO_ACTION}

    def _patches(self, obj: int, t: float) -> Iterator[Patch]:
        track = self.tracks[obj]
        part = track[part_index(track, t)]
        return object_patches(self.stage, self.looks[obj], state_at(part, t), part.wrap)


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
    ActorScene(scripts, fps=fps, width=width, height=height, seed=seed).write(path, crf)
