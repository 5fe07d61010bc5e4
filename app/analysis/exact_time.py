"""Seconds as exact rationals, so that clip windows and frame membership never round.

A float end such as ``2.2 + 1.6 == 3.8000000000000003`` lets a window take the frame at
exactly 3.8 s (49 frames where the recipe has 48). The planner therefore works in
``Fraction`` seconds: frame times straight from the stream's integer ticks
(``(pts - start_pts) * time_base``), and every float input (options, durations, a caller's
float frame times) read as the simplest rational that rounds to it: ``0.1`` is 1/10,
``2.1333333333333333`` is 32/15, ``float(k * 1001 / 30000)`` is k*1001/30000 again. That
reading is exact while ``denominator**2 * seconds < 4.5e15`` (no other fraction that simple
fits in the float's rounding interval): 150 h at a 1/90000 time base, 75 min at 1/1000000,
which is why a job's plan takes the times from the ticks (``scan_timeline``), not from
floats. Pure stdlib, so the API's admission check (``segmenting``) uses the same
arithmetic as the worker.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.analysis.scan import VideoScan

Seconds = float | int | Fraction
"""What the planner accepts for a time: a float is read with ``as_fraction``."""


def as_fraction(value: Seconds) -> Fraction:
    """``value`` exactly: Fractions and ints as they are, a finite float as the simplest
    rational strictly inside the interval of reals that round to it."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, int):
        return Fraction(value)
    if not math.isfinite(value):
        raise ValueError(f"not a finite time: {value!r}")
    if value.is_integer():
        return Fraction(int(value))
    if value < 0:
        return -as_fraction(-value)
    # The reals that round to value: strictly between the midpoints to its neighbours.
    num, den = value.as_integer_ratio()
    lo_num, lo_den = Fraction(math.nextafter(value, 0.0)).as_integer_ratio()
    hi_num, hi_den = Fraction(math.nextafter(value, math.inf)).as_integer_ratio()
    return _simplest_between(
        num * lo_den + lo_num * den, 2 * den * lo_den, num * hi_den + hi_num * den, 2 * den * hi_den
    )


def _simplest_between(low_num: int, low_den: int, high_num: int, high_den: int) -> Fraction:
    """The rational with the smallest denominator in the open interval (low, high),
    ``0 <= low < high`` (``high_den == 0``: unbounded); continued fractions in integers."""
    # x = a0 + 1/(a1 + 1/(...)); p/q are the convergents so far.
    p0, q0, p1, q1 = 0, 1, 1, 0
    while True:
        whole = low_num // low_den
        if high_den == 0 or (whole + 1) * high_den < high_num:
            return Fraction(p1 * (whole + 1) + p0, q1 * (whole + 1) + q0)
        # whole <= low < high <= whole + 1: continue with 1 / (the fractional parts), swapped.
        p0, q0, p1, q1 = p1, q1, p1 * whole + p0, q1 * whole + q0
        rest_low, rest_high = low_num - whole * low_den, high_num - whole * high_den
        low_num, low_den, high_num, high_den = high_den, rest_high, low_den, rest_low


def exact_times(times: Sequence[Seconds]) -> tuple[Fraction, ...]:
    return tuple(as_fraction(t) for t in times)


def scan_timeline(scan: VideoScan) -> tuple[tuple[Fraction, ...], Fraction]:
    """(frame times, duration) of a scan, exact: times from the integer pts and the time
    base; without timestamps ``i / fps`` with the rational rate; the duration snapped to
    whole ticks (the scan computes it from ticks, in floats)."""
    base = scan.time_base
    if scan.frame_pts and all(p is not None for p in scan.frame_pts):
        start = scan.start_pts
        times = tuple(
            Fraction((p - start) * base.numerator, base.denominator) for p in scan.frame_pts if p is not None
        )
        ticks = round(Fraction(scan.duration) / base)
        return times, max(Fraction(ticks) * base, as_fraction(1e-3))
    rate = as_fraction(scan.fps) if scan.fps else Fraction(25)
    return tuple(Fraction(i) / rate for i in range(len(scan.frame_times))), as_fraction(scan.duration)
