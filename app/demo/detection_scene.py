"""Scenes for the demo *detection* pair: two or three objects act differently at once, and every
object's box is known at every frame.

:class:`~app.demo.actors.ActorScene` asks "which actions go on?"; detection asks "who does
what, where?", so each object here also has a box and an identity over time. Three changes
make that answerable from single frames and per-object clips:

* objects stay wholly on stage: no wrap-around (a moving object never leaves, so its box is
  always one whole box); a move too long for the room left is slowed down to fit;
* objects never overlap: start places are drawn again until every pair keeps apart for the
  whole video (a swap of identities would be the generator's fault, not the tracker's);
* ``flashing`` dims the object to :data:`DIM` instead of hiding it: a person detector sees
  one keyframe, and a person stand-in that vanishes from it cannot be found there.

Shapes, looks, backdrop, drawing, noise and H.264 are the demo's own (same modules).
Numpy only; PyAV only where a video is written.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from app.demo.classes import CLASSES, DIRECTIONS
from app.demo.drawing import Patch, object_patches
from app.demo.looks import Look, make_look
from app.demo.motion import ObjectState, Part, draw_flash, draw_turn, state_at
from app.demo.scene import Scene, Script, check_scripts, part_index
from app.demo.stage import Stage

Box = tuple[float, float, float, float]
"""(x1, y1, x2, y2) normalised 0..1 of the frame."""

ACTION_LABELS: tuple[str, ...] = CLASSES
"""The demo detection head's labels, in class-id order (``static`` is an action here, as AVA's
"stand" is: every found object gets one)."""
HALF_LENGTH_RANGE = (0.08, 0.12)
"""Half the long side of an object, stage units: smaller than the one-label demo's, so three
fit side by side and still have room to move."""
SPEED_RANGE = (0.14, 0.24)
"""Stage sides per second of a move (slowed further only when the stage has no room)."""
DIM = 0.5
"""Coverage of a ``flashing`` object while it is "off": half blended into the backdrop, still on
the keyframe (at 0.3 a person stand-in detector missed nearly half of them)."""
GAP = 0.03
"""Smallest distance, stage units, between two objects' bounding circles."""
_STREAM = 3
"""Random stream of the seed (synthetic: 0, noise: 1, actors: 2)."""
_TRIES = 400


def _small_look(rng: np.random.Generator, background: np.ndarray, stage: Stage) -> Look:
    look = make_look(rng, background, stage)
    half = float(np.abs(look.vertices[:, 0]).max())
    scale = float(rng.uniform(*HALF_LENGTH_RANGE)) / half
    return dataclasses.replace(look, vertices=look.vertices * scale, period=look.period * scale)


def _plan(rng: np.random.Generator, script: Script, radius: float) -> list[Part]:
    """One object's parts: velocities drawn, then a start place from which the whole track fits."""
    lo, hi = radius, 1.0 - radius
    moves: list[tuple[str, float, float, float, float, float, float, float]] = []
    for label, seconds in script:
        vx = vy = omega = flash_period = flash_phase = 0.0
        duty = 1.0
        if label in DIRECTIONS:
            dx, dy = DIRECTIONS[label]
            speed = float(rng.uniform(*SPEED_RANGE))
            vx, vy = dx * speed, dy * speed
        elif label == "rotating":
            omega = draw_turn(rng)
        elif label == "flashing":
            flash_period, duty, flash_phase = draw_flash(rng)
        moves.append((label, float(seconds), vx, vy, omega, flash_period, flash_phase, duty))
    start = []
    scales = []
    for shifts in ([m[2] * m[1] for m in moves], [m[3] * m[1] for m in moves]):
        cum: npt.NDArray[np.float64] = np.cumsum(np.array([0.0, *shifts]))
        span = float(cum.max() - cum.min())
        scale = min(1.0, (hi - lo) / span) if span > 0 else 1.0
        scales.append(scale)
        cum = cum * scale
        start.append(float(rng.uniform(lo - cum.min(), hi - cum.max())))
    x, y = start
    angle = float(rng.uniform(0.0, 2 * math.pi))
    parts: list[Part] = []
    t = 0.0
    for label, seconds, vx, vy, omega, period, phase, duty in moves:
        part = Part(
            label,
            t,
            t + seconds,
            x,
            y,
            angle,
            vx * scales[0],
            vy * scales[1],
            omega,
            3.0,
            period,
            phase,
            duty,
        )
        parts.append(part)
        x, y, angle = x + part.vx * seconds, y + part.vy * seconds, angle + omega * seconds
        t += seconds
    return parts


class DetectionScene(Scene):
    """``len(scripts)`` objects, object ``i`` following ``scripts[i]``, apart at every frame.

    Every script must last as long as the first. Derived from ``seed`` alone; raises
    ValueError when no start places keep the objects apart (try another seed or script).
    """

    def __init__(
        self, scripts: Sequence[Script], *, fps: int = 30, width: int = 160, height: int = 120, seed: int = 0
    ) -> None:
        check_scripts(scripts, fps, width, height, "object")
        rng = self._start(fps, width, height, seed, _STREAM)
        self.looks = [_small_look(rng, self.background, self.stage) for _ in scripts]
        self.duration = float(sum(s for _, s in scripts[0]))
        self.frame_count = round(self.duration * fps)
        for _ in range(_TRIES):
            self.tracks = [_plan(rng, s, look.radius) for s, look in zip(scripts, self.looks, strict=True)]
            if self._apart():
                break
        else:
            raise ValueError(f"no start places keep these {len(scripts)} objects apart (seed {seed})")

    def _apart(self) -> bool:
        radii = [look.radius for look in self.looks]
        for t in np.arange(0.0, self.duration + 1e-9, 0.05):
            centres = [(s.x, s.y) for s in (self.state(i, float(t)) for i in range(len(self.looks)))]
            for i in range(len(centres)):
                for j in range(i):
                    if math.dist(centres[i], centres[j]) < radii[i] + radii[j] + GAP:
                        return False
        return True

    @property
    def object_count(self) -> int:
        return len(self.looks)

    def state(self, obj: int, t: float) -> ObjectState:
        """Object ``obj`` at ``t`` seconds (``visible`` False: dimmed, for ``flashing``)."""
        return state_at(self._part(obj, t), t)

    def label(self, obj: int, t: float) -> str:
        """What object ``obj`` does at ``t`` seconds."""
        return self._part(obj, t).label

    def _part(self, obj: int, t: float) -> Part:
        track = self.tracks[obj]
        return track[part_index(track, t)]

    def box(self, obj: int, t: float) -> Box:
        """Object ``obj``'s box at ``t`` seconds: its outline's extent, normalised to the frame."""
        s = self.state(obj, t)
        c, n = math.cos(s.angle), math.sin(s.angle)
        v = self.looks[obj].vertices
        pts = np.stack([c * v[:, 0] - n * v[:, 1] + s.x, n * v[:, 0] + c * v[:, 1] + s.y], axis=1)
        pix = self.stage.to_pixels(pts)
        x1, y1 = pix.min(axis=0)
        x2, y2 = pix.max(axis=0)
        return (x1 / self.width, y1 / self.height, x2 / self.width, y2 / self.height)

    def boxes(self, t: float) -> list[Box]:
        """Every object's box at ``t`` seconds, in object order."""
        return [self.box(i, t) for i in range(self.object_count)]

    def _patches(self, obj: int, t: float) -> Iterator[Patch]:
        s = self.state(obj, t)
        shown = dataclasses.replace(s, visible=True)
        for patch in object_patches(self.stage, self.looks[obj], shown, 3.0):
            yield patch if s.visible else dataclasses.replace(patch, coverage=patch.coverage * DIM)


def rotate_box(box: Box, rotation: int) -> Box:
    """``box`` of a stored frame as it shows after a display rotation of ``rotation`` degrees
    (the frame turned as ``np.rot90(frame, rotation // 90)``, i.e. counter-clockwise)."""
    x1, y1, x2, y2 = box
    for _ in range((rotation // 90) % 4):
        x1, y1, x2, y2 = y1, 1.0 - x2, y2, 1.0 - x1
    return (x1, y1, x2, y2)


def rotate_label(label: str, rotation: int) -> str:
    """What ``label`` of a stored frame looks like after a display rotation of ``rotation``
    degrees: a direction turns with the frame (``moving right`` shows as ``moving up`` at 90)."""
    if label not in DIRECTIONS:
        return label
    dx, dy = DIRECTIONS[label]
    for _ in range((rotation // 90) % 4):
        dx, dy = dy, -dx
    return next(name for name, d in DIRECTIONS.items() if d == (dx, dy))


def write_detection_video(
    path: str | Path,
    scripts: Sequence[Script],
    fps: int = 30,
    width: int = 160,
    height: int = 120,
    seed: int = 0,
    *,
    rotation: int = 0,
    crf: int = 20,
) -> DetectionScene:
    """Write an H.264 mp4 of ``scripts`` (display rotation ``rotation``); returns the scene,
    whose ``boxes(t)`` and ``label`` (turned by :func:`rotate_box` and :func:`rotate_label`) are
    the known answers."""
    scene = DetectionScene(scripts, fps=fps, width=width, height=height, seed=seed)
    scene.write(path, crf, rotation=rotation)
    return scene
