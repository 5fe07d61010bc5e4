"""Every decoded frame at 48x27 RGB, in batches: what the shot detector reads.

Runs where the video is decoded (the sandboxed child, or this process without a sandbox),
so full-size frames never leave the decoder: each is scaled by swscale
(``frame.reformat``; TransNetV2's reference scales with FFmpeg too) and only 3,888 bytes
a frame travel, ``BATCH`` frames at a time. No torch here (the child never imports it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from app.analysis.scan import VideoScan, pts_to_seconds

WIDTH, HEIGHT = 48, 27
BATCH = 100

FramesSink = Callable[[np.ndarray, list[float]], None]
"""Gets uint8 (n, 27, 48, 3) frames and their presentation times (s), in decode order."""


class SmallFrames:
    """Collects decoded frames (``add``, PyAV frames) and hands ``sink`` full batches;
    ``flush`` hands over the rest. A frame without a pts is one frame period after the last."""

    def __init__(self, scan: VideoScan, sink: FramesSink, batch: int = BATCH) -> None:
        self.scan, self.sink, self.batch = scan, sink, batch
        self._frames: list[np.ndarray] = []
        self._times: list[float] = []
        self._last: float | None = None
        self._period = 1.0 / scan.fps if scan.fps else 1.0 / 30
        self.count = 0

    def add(self, frame: Any) -> None:
        if frame.pts is not None:
            time = pts_to_seconds(int(frame.pts), self.scan.start_pts, self.scan.time_base)
        else:
            time = 0.0 if self._last is None else self._last + self._period
        self._last = time
        self._frames.append(frame.reformat(WIDTH, HEIGHT, "rgb24").to_ndarray())
        self._times.append(time)
        self.count += 1
        if len(self._frames) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if self._frames:
            frames, times = np.stack(self._frames), self._times
            self._frames, self._times = [], []
            self.sink(frames, times)
