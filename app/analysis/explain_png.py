"""Explanation pictures: a segment's frame with its heatmap blended on and a strip of frame weights.

``render_png`` is numpy and Pillow only (it draws from the results' JSON values); the frames
come from ``frames_at``, which decodes the file with PyAV, turned upright as the analysis
saw them (``decode.frame_to_rgb``), so a map registered to the displayed frame lies on it.
Used by ``vas analyze --explain-dir``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from app.analysis.results import Explanation

STRIP = 24
"""Height in pixels of the frame-weight strip under the frame."""


def middle_time(explanation: Explanation) -> float:
    """The time of the map's middle step: the frame the picture shows."""
    return explanation.times[len(explanation.times) // 2]


def blend(frame: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) with a (h, w) map in 0..1 stretched over it (bilinear) and blended
    on, red to yellow, opacity rising with the value: float32 RGB in 0..1. Shared with the
    annotated video's ``overlay=heatmap`` (``heat_overlay.py``)."""
    height, width = frame.shape[:2]
    step = np.asarray(grid, dtype=np.float32)
    heat = np.asarray(Image.fromarray(step, mode="F").resize((width, height), Image.Resampling.BILINEAR))
    heat = np.clip(heat, 0.0, 1.0)[..., None]
    colour = np.concatenate([np.ones_like(heat), np.clip(2 * heat - 1, 0, 1), np.zeros_like(heat)], axis=2)
    alpha = 0.6 * heat
    blended: np.ndarray = frame.astype(np.float32) / 255 * (1 - alpha) + colour * alpha
    return blended


def render_png(frame: np.ndarray, explanation: Explanation) -> bytes:
    """RGB uint8 (H, W, 3) with the middle step's map blended on (``blend``) above a strip
    with one bar per frame weight."""
    width = frame.shape[1]
    blended = blend(frame, np.asarray(explanation.data[len(explanation.data) // 2], dtype=np.float32))
    strip = np.full((STRIP, width, 3), 0.1, dtype=np.float32)
    weights = [w for _, w in explanation.frames]
    for k, weight in enumerate(weights):
        x0, x1 = k * width // len(weights), (k + 1) * width // len(weights)
        bar = round(weight * (STRIP - 2))
        strip[STRIP - bar :, x0 : max(x0 + 1, x1 - 1)] = (1.0, 0.6, 0.0)
    image = np.concatenate([blended, strip], axis=0)
    out = io.BytesIO()
    Image.fromarray((image * 255).round().astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


def frames_at(path: Path, times: Sequence[float]) -> dict[float, np.ndarray]:
    """For each time, the upright RGB frame shown then (the last one starting at or before it)."""
    import av

    from app.analysis.decode import frame_to_rgb

    wanted = sorted(set(times))
    found: dict[float, np.ndarray] = {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        previous = None
        for frame in container.decode(stream):
            when = float(frame.time or 0.0)
            while wanted and when > wanted[0] + 1e-6 and previous is not None:
                found[wanted.pop(0)] = frame_to_rgb(previous)
            if not wanted:
                break
            previous = frame
        for time in wanted:
            if previous is not None:
                found[time] = frame_to_rgb(previous)
    return found


def write_pngs(path: Path, explanations: Sequence[Explanation], out_dir: Path) -> list[Path]:
    """One PNG per explanation in ``out_dir``: ``segment-0003-4.png`` (segment, class id)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = frames_at(path, [middle_time(e) for e in explanations])
    written = []
    for item in explanations:
        target = out_dir / f"segment-{item.segment:04d}-{item.class_id}.png"
        target.write_bytes(render_png(frames[middle_time(item)], item))
        written.append(target)
    return written
