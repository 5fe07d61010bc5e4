"""The shot detector on a thread of its own, beside the clip model.

Frames arrive with the decoder's messages, on the scheduler's thread; running TransNetV2
there would stall inference for as long. Here they go through a short queue to one
thread: torch releases the GIL inside its kernels, so on a machine with a core to spare
the detector runs while the clip model does, and a full queue slows the decoder down
(bounded memory) instead of piling frames up.
"""

from __future__ import annotations

import queue
import threading

import numpy as np

from app.analysis.results import Shot
from app.analysis.shots import ShotDetector

DEPTH = 8
"""Batches (``shot_frames.BATCH`` frames each) waiting for the detector at most."""


class ShotRunner:
    """``add`` batches as they come; ``finish`` waits for the detector and gives the shots.
    ``close`` (always; idempotent) lets the thread go when a job ends early."""

    def __init__(self, detector: ShotDetector | None = None) -> None:
        self.detector = detector if detector is not None else ShotDetector()
        self._queue: queue.Queue[tuple[np.ndarray, list[float]] | None] = queue.Queue(maxsize=DEPTH)
        self._error: BaseException | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="shot-detector", daemon=True)
        self._thread.start()

    @property
    def seconds(self) -> float:
        """Time spent in the network so far."""
        return self.detector.seconds

    def add(self, frames: np.ndarray, times: list[float]) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((frames, times))

    def finish(self, duration: float | None = None) -> tuple[Shot, ...]:
        """The shots (``ShotDetector.finish``), once every batch added went through."""
        self.close()
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.detector.finish(duration)

    def close(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._queue.put(None)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self.detector.add(*item)
                except BaseException as exc:  # reported by the next add or by finish
                    self._error = exc
