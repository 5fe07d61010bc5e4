"""Deterministic test videos written with PyAV (no randomness, no external files)."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

FrameFn = Callable[[int, float, int, int], np.ndarray]


def moving_square(index: int, t: float, width: int, height: int) -> np.ndarray:
    """A bright square crossing a gradient background; the frame index is visible in it."""
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[..., 0] = (xx * 255 // max(width - 1, 1)).astype(np.uint8)
    img[..., 1] = (yy * 255 // max(height - 1, 1)).astype(np.uint8)
    img[..., 2] = (index * 7) % 256
    side = max(2, min(width, height) // 4)
    x0 = int((t * 40) % max(width - side, 1))
    y0 = (height - side) // 2
    img[y0 : y0 + side, x0 : x0 + side] = 255
    return img


def write_video(
    path: Path,
    *,
    seconds: float = 2.0,
    fps: int | Fraction = 30,
    width: int = 128,
    height: int = 96,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    frame_fn: FrameFn = moving_square,
    rotation: int = 0,
    timestamps: list[float] | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Write a video. ``timestamps`` (seconds) makes it variable-frame-rate."""
    rate = Fraction(fps)
    times = timestamps if timestamps is not None else [i / rate for i in range(round(seconds * rate))]
    time_base = Fraction(1, 90000) if timestamps is not None else 1 / rate
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate, options=options or {})
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.codec_context.time_base = time_base
        if codec in ("libx264", "libx265"):
            stream.options = {"preset": "ultrafast", **(options or {})}
        if rotation:
            stream.set_display_rotation(rotation)
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(frame_fn(i, float(t), width, height), format="rgb24")
            frame.pts = round(Fraction(t) / time_base) if timestamps is not None else i
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
