"""A dependency-free text progress bar for stderr."""

from __future__ import annotations

import sys
from typing import TextIO


class ProgressBar:
    """``[#######.............]  35% label``, redrawn in place; a no-op once closed."""

    def __init__(self, label: str = "", *, width: int = 30, stream: TextIO | None = None) -> None:
        self.label, self.width = label, width
        self.stream = stream if stream is not None else sys.stderr
        self._drawn = False

    def update(self, fraction: float) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        filled = round(fraction * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r[{bar}] {fraction * 100:3.0f}% {self.label}")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
