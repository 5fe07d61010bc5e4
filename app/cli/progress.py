"""A dependency-free progress display for stderr.

On a terminal it is a bar redrawn in place with ``\\r``. Anywhere else (a pipe, a log file,
CI) carriage returns would pile every redraw onto one line, so it prints plain lines
instead, at most one per ``min_interval`` seconds and only when the percentage changed;
the final 100% line is never dropped.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class ProgressBar:
    """``[#######.............]  35% label`` in place on a TTY, ``[ 35%] label`` lines otherwise;
    a no-op once closed."""

    def __init__(
        self,
        label: str = "",
        *,
        width: int = 30,
        stream: TextIO | None = None,
        interactive: bool | None = None,
        min_interval: float = 2.0,
    ) -> None:
        self.label, self.width, self.min_interval = label, width, min_interval
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = _is_terminal(self.stream) if interactive is None else interactive
        self._drawn = False
        self._last_percent: int | None = None
        self._last_line_at = float("-inf")

    def update(self, fraction: float) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        if self.interactive:
            self._redraw(fraction)
        else:
            self._print_line(fraction)

    def _redraw(self, fraction: float) -> None:
        filled = round(fraction * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r[{bar}] {fraction * 100:3.0f}% {self.label}")
        self.stream.flush()
        self._drawn = True

    def _print_line(self, fraction: float) -> None:
        percent = round(fraction * 100)
        now = time.monotonic()
        if percent == self._last_percent:
            return
        if percent < 100 and now - self._last_line_at < self.min_interval:
            return
        self.stream.write(f"[{percent:3d}%] {self.label}\n")
        self.stream.flush()
        self._last_percent, self._last_line_at = percent, now

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
