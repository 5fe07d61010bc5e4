"""Shots as soon as they are final, while the video is still being decoded (``segmentation=shots``).

TransNetV2's prediction for a frame is final once its window has run (``ShotDetector``).
A shot is final once the transition after it is: its run of lit frames has ended (the
frame after it is predicted, and lit in neither output, so no run can grow into it) and
the frames predicted reach more than ``FLASH_SECONDS`` (+ ``SLACK``) past the frame before
it, so the flash check (which may drop it with the next transition) has seen everything it
will ever see. Transitions are decided in order (the flash check pairs them from the
start), so the final shots are those up to the first transition not yet final: the very
shots ``shots_from_predictions`` gives on the whole video, known early
(``tests/unit/test_shot_plan.py`` holds every prefix of random predictions to that).

``StreamingShots`` runs the detector on its thread (``ShotRunner``) and, after each batch,
publishes the final shots; it also writes a byte to a socket the scheduler waits on, so a
task waiting for its next shot wakes as soon as the detector moved on.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Sequence

import numpy as np

from app.analysis.results import Shot
from app.analysis.shot_runner import ShotRunner
from app.analysis.shots import (
    EDGE_FRAMES,
    FLASH_SECONDS,
    FrameAt,
    ShotDetector,
    Transition,
    _drop_flashes,
    transitions,
)

SLACK = 0.1
"""Seconds of predictions past the flash horizon before a transition counts as final."""


def final_shots(
    single: np.ndarray, many: np.ndarray, times: Sequence[float], frame_at: FrameAt | None = None
) -> list[Shot]:
    """The shots that no later frame can change, given the predictions of the first frames
    (``times``: theirs; ``frame_at``: the flash check's frames, as ``shots_from_predictions``)."""
    n = len(single)
    if n == 0:
        return []
    times = times[:n]
    found = transitions(single, many)
    if frame_at is not None:
        found = _drop_flashes(found, times, frame_at)
    shots: list[Shot] = []
    previous = 0
    kind_before: Transition | None = None
    for a, b, kind in found:
        if b + 1 + EDGE_FRAMES >= n or times[n - 1] <= times[max(a - 1, 0)] + FLASH_SECONDS + SLACK:
            break
        first = b + 1 if kind == "cut" else (a + b + 1) // 2
        if max(previous, EDGE_FRAMES - 1) < first <= n - EDGE_FRAMES:
            start = float(times[previous]) if shots else 0.0
            shots.append(Shot(len(shots), start, float(times[first]), kind_before))
            previous, kind_before = first, kind
    return shots


class StreamingShots(ShotRunner):
    """``ShotRunner`` that publishes final shots as it goes; ``end(duration)`` once every
    frame was added, then ``final`` is set (all the shots) and ``ended`` is True."""

    def __init__(self, detector: ShotDetector | None = None) -> None:
        self._lock = threading.Lock()
        self._shots: list[Shot] = []
        self.final: tuple[Shot, ...] | None = None
        self._duration: float | None = None
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        super().__init__(detector)

    @property
    def ended(self) -> bool:
        return self.final is not None or self._error is not None

    def waitable(self) -> socket.socket:
        return self._reader

    def end(self, duration: float) -> None:
        """No more frames: the thread finishes the detector with the video's ``duration``."""
        self._duration = duration
        self.close()

    def shots(self) -> list[Shot]:
        """The final shots so far (all of them once ``ended``); raises the detector's error."""
        self._drain()
        if self._error is not None:
            raise self._error
        with self._lock:
            return list(self.final) if self.final is not None else list(self._shots)

    def finish(self, duration: float | None = None) -> tuple[Shot, ...]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self.final is None:
            raise RuntimeError("the shot detector was stopped before the video's end")
        return self.final

    def release(self) -> None:
        """Close the wake-up socket (after ``close``; the thread may still write: it ignores that)."""
        for sock in (self._reader, self._writer):
            sock.close()

    def _drain(self) -> None:
        try:
            while self._reader.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _wake(self) -> None:
        try:
            self._writer.send(b"\0")
        except (BlockingIOError, OSError):  # full (the reader will look anyway) or closed
            pass

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self.detector.add(*item)
                    single, many = self.detector.predictions()
                    shots = final_shots(single, many, self.detector.times, self.detector._thumbs.get)
                    with self._lock:
                        self._shots = shots
                except BaseException as exc:  # reported by ``shots`` or ``finish``
                    self._error = exc
            self._wake()
        if self._error is None and self._duration is not None:
            try:
                final = self.detector.finish(self._duration)
                with self._lock:
                    self.final = final
            except BaseException as exc:
                self._error = exc
        self._wake()
