"""What each object does over time: one track of parts per object, following the script.

Every moving object lives on a wrap-around (torus) world slightly larger than the
stage (the look's :attr:`~app.demo.looks.Look.wrap`): it leaves one edge while
already re-entering at the opposite one (bouncing would reverse the direction, and
the class). Parts chain: each starts where the previous one ended.

Static, rotating and flashing objects must be seen whole (an object parked in the
wrap margin shows only a sliver: no evidence). Objects start wholly on stage, and
a move's speed is drawn (within :data:`SPEED_RANGE`) so that it ends with the
object wholly on stage again; only after a move too short for that (under about
3 s) is a straddling object re-spawned, exactly at the part boundary.

Ranges are in stage units (1.0 = stage side) and seconds, chosen so a 1.07 s clip
of 8 frames shows several pixels of motion / >= 15 degrees of turn per sampled
step, and at least one on->off or off->on change for flashing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.demo.classes import DIRECTIONS

SPEED_RANGE = (0.25, 0.45)
"""Stage sides per second for the moving classes."""
ANGULAR_SPEED_RANGE = (90.0, 200.0)
"""Degrees per second (either sense) for ``rotating``."""
FLASH_PERIOD_RANGE = (0.36, 0.8)
"""Seconds per on/off cycle for ``flashing``."""


@dataclass(frozen=True)
class Part:
    """One script part of one object's track: where it starts and how it changes."""

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


def wrap_coordinate(value: Any, period: float) -> Any:
    """A coordinate (or an array of them) on the wrap-around axis, in ``[-margin, 1 + margin)``."""
    margin = (period - 1.0) / 2.0
    return (value + margin) % period - margin


def state_at(part: Part, t: float) -> ObjectState:
    """The object's state at time ``t`` (seconds into the video) under ``part``."""
    dt = t - part.start
    visible = True
    if part.flash_period > 0:
        visible = ((dt + part.flash_phase) % part.flash_period) < part.flash_duty * part.flash_period
    return ObjectState(
        x=wrap_coordinate(part.x0 + part.vx * dt, part.wrap),
        y=wrap_coordinate(part.y0 + part.vy * dt, part.wrap),
        angle=part.angle0 + part.omega * dt,
        visible=visible,
    )


def _landing_speed(
    rng: np.random.Generator, start: float, travel: float, wrap: float, lo: float, hi: float
) -> float:
    """A speed from ``SPEED_RANGE`` after which a move of ``travel`` (seconds, signed by
    direction) from ``start`` ends with the centre in ``[lo, hi]`` of the wrap-around
    axis; when no drawn speed does (a short move), the first one drawn."""
    speeds = rng.uniform(*SPEED_RANGE, size=64)
    ends = wrap_coordinate(start + speeds * travel, wrap)
    landing = np.flatnonzero((ends >= lo) & (ends <= hi))
    return float(speeds[landing[0]] if landing.size else speeds[0])


def draw_turn(rng: np.random.Generator) -> float:
    """A ``rotating`` part's turn rate, radians per second, either sense."""
    return math.radians(float(rng.uniform(*ANGULAR_SPEED_RANGE))) * float(rng.choice([-1, 1]))


def draw_flash(rng: np.random.Generator) -> tuple[float, float, float]:
    """A ``flashing`` part's period (s), duty (share of it on) and phase (s), drawn in that order."""
    period = float(rng.uniform(*FLASH_PERIOD_RANGE))
    duty = float(rng.uniform(0.4, 0.6))
    return period, duty, float(rng.uniform(0.0, period))


def plan_track(
    rng: np.random.Generator, script: Sequence[tuple[str, float]], radius: float, wrap: float
) -> list[Part]:
    """One object's track: a part per script entry, each starting where the last one ended.

    ``radius`` is the object's farthest vertex from its centre and ``wrap`` the
    period of its wrap-around world (see :class:`~app.demo.looks.Look`).
    """
    lo, hi = radius, 1.0 - radius  # centre range of a wholly visible object

    def inside(value: float) -> float:
        """``value`` if the object is wholly on stage along that axis, else a fresh place."""
        return value if lo <= value <= hi else float(rng.uniform(lo, hi))

    x, y = (float(v) for v in rng.uniform(lo, hi, size=2))
    angle = float(rng.uniform(0.0, 2 * math.pi))
    parts: list[Part] = []
    start = 0.0
    for label, seconds in script:
        end = start + float(seconds)
        vx = vy = omega = 0.0
        flash_period = flash_phase = 0.0
        flash_duty = 1.0
        if label in DIRECTIONS:
            dx, dy = DIRECTIONS[label]
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
            omega = draw_turn(rng)
        elif label == "flashing":
            flash_period, flash_duty, flash_phase = draw_flash(rng)
        part = Part(
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
        state = state_at(part, end)
        x, y, angle = state.x, state.y, state.angle
        start = end
    return parts
