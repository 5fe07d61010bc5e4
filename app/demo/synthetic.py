"""Deterministic synthetic motion clips: the known-answer data behind the demo model.

Zoo weights cannot be fetched offline, so the service ships a small model trained
on these clips (``scripts/train_demo_model.py``). The same generator writes the
test videos, so "right labels at the right times" is checkable end to end.

Design choices, and why:

* One to three foreground objects (random polygon, colour, size, chequer pattern),
  all doing what the script says, each at its own speed / turn rate / flash rate,
  over a random textured, noisy background with static distractor shapes: colour,
  shape and "something is there" carry no class information, only how the objects
  change over time. The chequer pattern makes the whole surface of an object, not
  just its outline, change when it moves or turns: more evidence for a model that
  averages over the frame (X3D's head does).
* Every shape is elongated or asymmetric (no circles or squares), so rotation is
  always visible.
* Geometry lives on the *stage*: the centred square of side ``min(width, height)``,
  which is exactly what a short-side-scale + centre-crop model sees. Outside it
  (pillar/letter box of non-square frames) the background is dimmed and the object
  is never drawn, so no part of a class's evidence is cropped away.
* Objects live on a wrap-around (torus) world slightly larger than the stage: a
  moving object leaves one edge while already re-entering at the opposite one
  (bouncing would reverse the direction, and the class). In a scripted video the
  objects persist: position, angle and look carry over between parts.
* Static, rotating and flashing objects must be seen whole (an object parked in
  the wrap margin shows only a sliver: no evidence). Objects start wholly on stage,
  and a move's speed is drawn (within ``SPEED_RANGE``) so that it ends with the
  object wholly on stage again; only after a move too short for that (under about
  3 s) is a straddling object re-spawned, exactly at the part boundary.
* Per-frame sensor noise is seeded by ``(seed, frame index)``, so any frame can be
  rendered on its own (training samples windows) and still be bit-identical.

Only numpy is imported at module level; PyAV is imported where videos are written
or read, and torch never (this module also writes test videos for the API).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

CLASSES: tuple[str, ...] = (
    "moving left",
    "moving right",
    "moving up",
    "moving down",
    "rotating",
    "static",
    "flashing",
)
"""Class names in class-id order (the demo model's label file)."""

_DIRECTIONS: dict[str, tuple[float, float]] = {
    "moving left": (-1.0, 0.0),
    "moving right": (1.0, 0.0),
    "moving up": (0.0, -1.0),
    "moving down": (0.0, 1.0),
}

# Ranges in stage units (1.0 = stage side) and seconds. Chosen so a 1.07 s clip of
# 8 frames shows several pixels of motion / >= 15 degrees of turn per sampled step,
# and at least one on->off or off->on change for flashing.
SPEED_RANGE = (0.25, 0.45)
"""Stage sides per second for the moving classes."""
ANGULAR_SPEED_RANGE = (90.0, 200.0)
"""Degrees per second (either sense) for ``rotating``."""
FLASH_PERIOD_RANGE = (0.36, 0.8)
"""Seconds per on/off cycle for ``flashing``."""
OBJECTS_RANGE = (1, 3)
"""Inclusive range of the number of foreground objects; all of them follow the script."""
HALF_LENGTH_RANGE = (0.12, 0.22)
"""Half of the object's long side, in stage units."""
ASPECT_RANGE = (1.7, 2.5)
"""Long side / short side of the object."""
PATTERN_PERIOD_RANGE = (0.06, 0.12)
"""Period of the chequer pattern on the object surface, in stage units."""

_SHAPES = ("rectangle", "ellipse", "triangle", "cross", "ell")

Frame = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float32]


def class_id(label: str) -> int:
    """Class id of ``label``; raises ValueError for names outside :data:`CLASSES`."""
    try:
        return CLASSES.index(label)
    except ValueError:
        raise ValueError(f"unknown demo class {label!r}; expected one of {list(CLASSES)}") from None


def _polygon(shape: str, half_length: float, aspect: float) -> npt.NDArray[np.float64]:
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
        centred: npt.NDArray[np.float64] = arr - arr.mean(axis=0)
        return centred
    else:  # pragma: no cover - guarded by _SHAPES
        raise ValueError(shape)
    return np.array(pts, dtype=np.float64)


def _rotate(vertices: npt.NDArray[np.float64], angle: float) -> npt.NDArray[np.float64]:
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]], dtype=np.float64)
    out: npt.NDArray[np.float64] = vertices @ rot.T
    return out


def _polygon_alpha(
    vertices: npt.NDArray[np.float64], xs: npt.NDArray[np.floating[Any]], ys: npt.NDArray[np.floating[Any]]
) -> FloatArray:
    """Anti-aliased coverage (0..1) of a polygon (pixel coordinates) at pixel centres ``ys`` x ``xs``.

    Signed distance to the outline, clipped to one pixel: edges stay smooth, so
    sub-pixel motion is visible and the model sees no staircase artefacts.
    Vectorised over the edges (arrays E x h x w) because rendering speed bounds
    how much training data fits in the training budget.
    """
    a = vertices[:, :, None, None]
    e = (np.roll(vertices, -1, axis=0) - vertices)[:, :, None, None]
    ax, ay, ex, ey = a[:, 0], a[:, 1], e[:, 0], e[:, 1]
    px = np.asarray(xs, dtype=np.float64)[None, None, :]
    py = np.asarray(ys, dtype=np.float64)[None, :, None]
    wx, wy = px - ax, py - ay
    h = np.clip((wx * ex + wy * ey) / np.maximum(ex * ex + ey * ey, 1e-12), 0.0, 1.0)
    dist2 = ((wx - ex * h) ** 2 + (wy - ey * h) ** 2).min(axis=0)
    # Even-odd rule: count edges crossed by a ray towards +x.
    crosses = (ay > py) != (ay + ey > py)
    x_at = ax + (py - ay) * ex / np.where(ey == 0, 1.0, ey)
    inside = (crosses & (px < x_at)).sum(axis=0) % 2 == 1
    signed = np.sqrt(dist2) * np.where(inside, 1.0, -1.0)
    alpha: FloatArray = np.clip(signed + 0.5, 0.0, 1.0).astype(np.float32)
    return alpha


def _upsample(grid: npt.NDArray[np.float64], height: int, width: int) -> FloatArray:
    """Bilinear upsampling of a coarse (h, w, c) grid to (height, width, c), one axis at a time."""
    gh, gw = grid.shape[:2]
    g = grid.astype(np.float32)
    xs = np.linspace(0.0, gw - 1.0, width, dtype=np.float32)
    x0 = np.minimum(xs.astype(int), gw - 2)
    fx = (xs - x0.astype(np.float32))[None, :, None]
    rows = g[:, x0] * (1 - fx) + g[:, x0 + 1] * fx  # (gh, width, c)
    ys = np.linspace(0.0, gh - 1.0, height, dtype=np.float32)
    y0 = np.minimum(ys.astype(int), gh - 2)
    fy = (ys - y0.astype(np.float32))[:, None, None]
    out: FloatArray = rows[y0] * (1 - fy) + rows[y0 + 1] * fy
    return out


def _luma(rgb: npt.NDArray[np.float64] | FloatArray) -> npt.NDArray[np.float64]:
    return np.asarray(rgb @ np.array([0.299, 0.587, 0.114]), dtype=np.float64)


@dataclass(frozen=True)
class _Look:
    shape: str
    vertices: npt.NDArray[np.float64]  # stage units, angle 0
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


@dataclass(frozen=True)
class _Part:
    label: str
    start: float
    end: float
    x0: float
    y0: float
    angle0: float
    vx: float
    vy: float
    omega: float  # rad/s
    wrap: float  # period of the wrap-around world in stage units (the look's, along x and y)
    flash_period: float  # 0 = never flashes
    flash_phase: float
    flash_duty: float


@dataclass(frozen=True)
class ObjectState:
    """Where a foreground object is at one instant (stage units, radians)."""

    x: float
    y: float
    angle: float
    visible: bool


def _wrap(value: Any, period: float) -> Any:
    """A coordinate (or an array of them) on the wrap-around axis, in ``[-margin, 1 + margin)``."""
    margin = (period - 1.0) / 2.0
    return (value + margin) % period - margin


def _landing_speed(
    rng: np.random.Generator, start: float, travel: float, wrap: float, lo: float, hi: float
) -> float:
    """A speed from ``SPEED_RANGE`` after which a move of ``travel`` (seconds, signed by
    direction) from ``start`` ends with the centre in ``[lo, hi]`` of the wrap-around
    axis; when no drawn speed does (a short move), the first one drawn."""
    speeds = rng.uniform(*SPEED_RANGE, size=64)
    ends = _wrap(start + speeds * travel, wrap)
    landing = np.flatnonzero((ends >= lo) & (ends <= hi))
    return float(speeds[landing[0]] if landing.size else speeds[0])


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
        self.side = min(width, height)
        self.stage_x0 = (width - self.side) / 2.0
        self.stage_y0 = (height - self.side) / 2.0
        rng = np.random.default_rng([seed, 0])
        self.background = self._make_background(rng)
        self.noise_sigma = float(rng.uniform(0.0, 8.0))
        count = int(rng.integers(OBJECTS_RANGE[0], OBJECTS_RANGE[1] + 1))
        self.looks = [self._make_look(rng) for _ in range(count)]
        self.tracks = [self._make_parts(rng, script, look) for look in self.looks]
        self.parts = self.tracks[0]
        self.duration = self.parts[-1].end
        self.frame_count = round(self.duration * fps)

    # -- construction -------------------------------------------------------------

    def _stage_pixels(self, vertices: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        out = vertices * self.side
        out[:, 0] += self.stage_x0
        out[:, 1] += self.stage_y0
        return out

    def _random_look(self, rng: np.random.Generator) -> tuple[str, npt.NDArray[np.float64]]:
        shape = _SHAPES[int(rng.integers(len(_SHAPES)))]
        half_length = float(rng.uniform(*HALF_LENGTH_RANGE))
        aspect = float(rng.uniform(*ASPECT_RANGE))
        return shape, _polygon(shape, half_length, aspect)

    def _make_background(self, rng: np.random.Generator) -> FloatArray:
        h, w = self.height, self.width
        base = rng.uniform(70.0, 180.0, size=3)
        coarse = rng.normal(0.0, 28.0, size=(int(rng.integers(3, 7)), int(rng.integers(3, 7)), 3))
        cells = int(rng.integers(8, 28))
        texture = rng.normal(0.0, rng.uniform(6.0, 22.0), size=(cells, cells, 1))
        bg = base.astype(np.float32)[None, None, :] + _upsample(coarse, h, w) + _upsample(texture, h, w)
        grain = np.float32(rng.uniform(0.0, 7.0))
        bg += rng.standard_normal(size=(h, w, 1), dtype=np.float32) * grain  # fixed grain
        # Static distractors: same shape family, so "a shape is present" means nothing.
        for _ in range(int(rng.integers(0, 4))):
            _, verts = self._random_look(rng)
            verts = _rotate(verts * rng.uniform(0.5, 1.0), float(rng.uniform(0, 2 * math.pi)))
            pix = self._stage_pixels(verts + rng.uniform(0.1, 0.9, size=2))
            colour = rng.uniform(0.0, 255.0, size=3).astype(np.float32)
            strength = float(rng.uniform(0.25, 0.7))
            x_lo, x_hi = max(0, math.floor(pix[:, 0].min()) - 1), min(w, math.ceil(pix[:, 0].max()) + 1)
            y_lo, y_hi = max(0, math.floor(pix[:, 1].min()) - 1), min(h, math.ceil(pix[:, 1].max()) + 1)
            if x_lo >= x_hi or y_lo >= y_hi:
                continue
            xs = np.arange(x_lo, x_hi, dtype=np.float32) + 0.5
            ys = np.arange(y_lo, y_hi, dtype=np.float32) + 0.5
            alpha = np.float32(strength) * _polygon_alpha(pix, xs, ys)[..., None]
            region = bg[y_lo:y_hi, x_lo:x_hi]
            bg[y_lo:y_hi, x_lo:x_hi] = region * (1 - alpha) + colour * alpha
        # Dim everything outside the stage (what a centre crop drops anyway).
        outside = np.ones((h, w), dtype=bool)
        sx, sy = round(self.stage_x0), round(self.stage_y0)
        outside[sy : sy + self.side, sx : sx + self.side] = False
        bg[outside] *= np.float32(0.45)
        out: FloatArray = np.clip(bg, 0.0, 255.0)
        return out

    def _make_look(self, rng: np.random.Generator) -> _Look:
        shape, vertices = self._random_look(rng)
        s = self.side
        bg_mean = self.background[
            round(self.stage_y0) : round(self.stage_y0) + s, round(self.stage_x0) : round(self.stage_x0) + s
        ].reshape(-1, 3)
        mean = bg_mean.mean(axis=0).astype(np.float64)
        bg_luma = float(_luma(mean))
        colour = rng.uniform(0.0, 255.0, size=3)
        for _ in range(500):  # rejection sampling: the object must stand out, and so must its pattern
            luma = float(_luma(colour))
            if abs(luma - bg_luma) >= 65 and np.linalg.norm(colour - mean) >= 100 and 50 <= luma <= 205:
                break
            colour = rng.uniform(0.0, 255.0, size=3)
        else:  # pragma: no cover - practically unreachable; fall back to max contrast
            colour = np.full(3, 30.0 if bg_luma > 127 else 225.0)
        # The surface pattern goes from the colour further away from the background, so
        # both ends stand out; it makes the whole object area (not only its outline)
        # change as it moves or turns.
        extreme = 255.0 if float(_luma(colour)) > bg_luma else 0.0
        colour2 = colour + 0.8 * (extreme - colour)
        return _Look(
            shape=shape,
            vertices=vertices,
            colour=colour.astype(np.float32),
            colour2=colour2.astype(np.float32),
            period=float(rng.uniform(*PATTERN_PERIOD_RANGE)),
            phase=(float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(0, 2 * math.pi))),
        )

    def _make_parts(
        self, rng: np.random.Generator, script: Sequence[tuple[str, float]], look: _Look
    ) -> list[_Part]:
        """One object's track: a part per script entry, each starting where the last one ended."""
        wrap = look.wrap
        lo, hi = look.radius, 1.0 - look.radius  # centre range of a wholly visible object

        def inside(value: float) -> float:
            """``value`` if the object is wholly on stage along that axis, else a fresh place."""
            return value if lo <= value <= hi else float(rng.uniform(lo, hi))

        x, y = (float(v) for v in rng.uniform(lo, hi, size=2))
        angle = float(rng.uniform(0.0, 2 * math.pi))
        parts: list[_Part] = []
        start = 0.0
        for label, seconds in script:
            end = start + float(seconds)
            vx = vy = omega = 0.0
            flash_period = flash_phase = 0.0
            flash_duty = 1.0
            if label in _DIRECTIONS:
                dx, dy = _DIRECTIONS[label]
                if dx:
                    y = inside(y)
                    speed = _landing_speed(rng, x, dx * float(seconds), wrap, lo, hi)
                else:
                    x = inside(x)
                    speed = _landing_speed(rng, y, dy * float(seconds), wrap, lo, hi)
                vx, vy = dx * speed, dy * speed
            else:
                x, y = inside(x), inside(y)
            if label == "rotating":
                omega = math.radians(float(rng.uniform(*ANGULAR_SPEED_RANGE))) * float(rng.choice([-1, 1]))
            elif label == "flashing":
                flash_period = float(rng.uniform(*FLASH_PERIOD_RANGE))
                flash_duty = float(rng.uniform(0.4, 0.6))
                flash_phase = float(rng.uniform(0.0, flash_period))
            part = _Part(
                label=label,
                start=start,
                end=end,
                x0=x,
                y0=y,
                angle0=angle,
                vx=vx,
                vy=vy,
                omega=omega,
                wrap=wrap,
                flash_period=flash_period,
                flash_phase=flash_phase,
                flash_duty=flash_duty,
            )
            parts.append(part)
            state = self._state_in(part, end)
            x, y, angle = state.x, state.y, state.angle
            start = end
        return parts

    # -- queries ------------------------------------------------------------------

    def _state_in(self, part: _Part, t: float) -> ObjectState:
        dt = t - part.start
        visible = True
        if part.flash_period > 0:
            visible = ((dt + part.flash_phase) % part.flash_period) < part.flash_duty * part.flash_period
        return ObjectState(
            x=_wrap(part.x0 + part.vx * dt, part.wrap),
            y=_wrap(part.y0 + part.vy * dt, part.wrap),
            angle=part.angle0 + part.omega * dt,
            visible=visible,
        )

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
        return self._state_in(self.tracks[obj][self.part_at(index)], index / self.fps)

    def object_alpha(self, index: int, obj: int | None = None) -> FloatArray:
        """Coverage (H, W) of object ``obj`` (None: all objects) in frame ``index``; zero while flashed off."""
        alpha = np.zeros((self.height, self.width), dtype=np.float32)
        for i in range(self.object_count) if obj is None else (obj,):
            for ys, xs, patch_alpha, _ in self._patches(index, i):
                np.maximum(alpha[ys, xs], patch_alpha, out=alpha[ys, xs])
        return alpha

    def _patches(self, index: int, obj: int) -> Iterator[tuple[slice, slice, FloatArray, FloatArray]]:
        """(rows, columns, coverage, pattern mix 0..1) of each on-stage copy of object ``obj``.

        A wrapping object has a copy one wrap period away; copies never overlap.
        Working on bounding boxes, not whole frames, keeps rendering cheap.
        """
        part = self.tracks[obj][self.part_at(index)]
        st = self._state_in(part, index / self.fps)
        if not st.visible:
            return
        look = self.looks[obj]
        verts = _rotate(look.vertices, st.angle)
        cos, sin = math.cos(st.angle), math.sin(st.angle)
        freq = 2 * math.pi / look.period
        shifts = (-part.wrap, 0.0, part.wrap)
        sx0, sy0 = round(self.stage_x0), round(self.stage_y0)
        for ox in shifts:
            for oy in shifts:
                pix = self._stage_pixels(verts + np.array([st.x + ox, st.y + oy]))
                x_lo = max(sx0, math.floor(pix[:, 0].min()) - 1)
                x_hi = min(sx0 + self.side, math.ceil(pix[:, 0].max()) + 1)
                y_lo = max(sy0, math.floor(pix[:, 1].min()) - 1)
                y_hi = min(sy0 + self.side, math.ceil(pix[:, 1].max()) + 1)
                if x_lo >= x_hi or y_lo >= y_hi:
                    continue
                xs = np.arange(x_lo, x_hi, dtype=np.float32) + 0.5
                ys = np.arange(y_lo, y_hi, dtype=np.float32) + 0.5
                alpha = _polygon_alpha(pix, xs, ys)
                # Pattern in object coordinates (it moves and turns with the object).
                sx = (xs[None, :] - self.stage_x0) / self.side - (st.x + ox)
                sy = (ys[:, None] - self.stage_y0) / self.side - (st.y + oy)
                u, v = cos * sx + sin * sy, -sin * sx + cos * sy
                mix = 0.5 + 0.5 * np.sin(freq * u + look.phase[0]) * np.sin(freq * v + look.phase[1])
                yield slice(y_lo, y_hi), slice(x_lo, x_hi), alpha, mix.astype(np.float32)

    def frame(self, index: int) -> Frame:
        """RGB uint8 (H, W, 3) frame ``index``: background, objects (in order), per-frame sensor noise."""
        img = self.background.copy()
        for obj, look in enumerate(self.looks):
            for ys, xs, alpha, mix in self._patches(index, obj):
                surface = look.colour * (1.0 - mix[..., None]) + look.colour2 * mix[..., None]
                img[ys, xs] = img[ys, xs] * (1.0 - alpha[..., None]) + surface * alpha[..., None]
        if self.noise_sigma > 0:
            noise_rng = np.random.default_rng([self.seed, 1, index])
            img += noise_rng.standard_normal(size=img.shape, dtype=np.float32) * np.float32(self.noise_sigma)
        np.clip(img, 0.0, 255.0, out=img)
        out: Frame = np.rint(img).astype(np.uint8)
        return out

    def frames(self) -> Iterator[Frame]:
        """All frames in order."""
        for k in range(self.frame_count):
            yield self.frame(k)


def render_frames(
    label: str, seconds: float, fps: int = 30, width: int = 160, height: int = 120, seed: int = 0
) -> Iterator[Frame]:
    """Frames (RGB uint8, H x W x 3) of a ``seconds``-long clip showing class ``label``."""
    return SyntheticScene([(label, seconds)], fps=fps, width=width, height=height, seed=seed).frames()


def _encode(
    frames: Iterator[Frame] | Sequence[Frame],
    target: str | object,
    fps: int,
    width: int,
    height: int,
    crf: int,
) -> None:
    import av

    if width % 2 or height % 2:
        raise ValueError("yuv420p H.264 needs even width and height")
    rate = Fraction(fps)
    with av.open(target, mode="w", format="mp4") as container:  # type: ignore[call-overload]
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = 1 / rate
        # One encoder thread: the bitstream is then the same on every machine (x264's
        # output depends on its thread count), and short encodes are much faster.
        stream.options = {"preset": "ultrafast", "crf": str(crf), "threads": "1"}
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


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
    object and background persist across parts (see the module docstring).
    """
    scene = SyntheticScene(script, fps=fps, width=width, height=height, seed=seed)
    _encode(scene.frames(), str(path), fps, width, height, crf)


def _rgb(frame: Any) -> Frame:
    out: Frame = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
    return out


def h264_round_trip(frames: Sequence[Frame], fps: int = 30, crf: int = 23) -> list[Frame]:
    """Encode ``frames`` with libx264 in memory and decode them again (compression artefacts)."""
    import io

    import av

    height, width = frames[0].shape[:2]
    buffer = io.BytesIO()
    _encode(frames, buffer, fps, width, height, crf)
    buffer.seek(0)
    with av.open(buffer, mode="r") as container:
        return [_rgb(f) for f in container.decode(video=0)]


def read_video_rgb(path: str | Path) -> tuple[list[Frame], list[float]]:
    """Decode every frame of the first video stream: (RGB frames, presentation times in seconds)."""
    import av

    frames: list[Frame] = []
    times: list[float] = []
    with av.open(str(path), mode="r") as container:
        stream = container.streams.video[0]
        for i, frame in enumerate(container.decode(stream)):
            frames.append(_rgb(frame))
            times.append(
                float(frame.time) if frame.time is not None else i / float(stream.average_rate or 30)
            )
    return frames, times
