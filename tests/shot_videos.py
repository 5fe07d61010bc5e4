"""Edited test videos with known shot boundaries: synthetic demo scenes (a backdrop of their own
per shot) joined by hard cuts or a dissolve, a flash, a fast pan, and real clips joined end
to end (re-encoded to one size and rate with PyAV)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from app.demo.synthetic import SyntheticScene
from app.demo.video import encode_h264

FPS, WIDTH, HEIGHT = 30, 160, 120


@dataclass(frozen=True)
class Part:
    label: str
    seconds: float
    seed: int


@dataclass(frozen=True)
class Edit:
    """The frames of an edited video and where its shots begin (frame indices)."""

    frames: list[np.ndarray]
    cuts: list[int]
    """First frame of each shot after a hard cut."""
    dissolves: list[tuple[int, int]]
    """(first, last) frame of each dissolve."""


def _scene_frames(part: Part) -> list[np.ndarray]:
    scene = SyntheticScene([(part.label, part.seconds)], fps=FPS, width=WIDTH, height=HEIGHT, seed=part.seed)
    return list(scene.frames())


def edited(parts: Sequence[Part], dissolve_after: int | None = None, dissolve_frames: int = 20) -> Edit:
    """``parts`` joined by hard cuts, except the join after part ``dissolve_after`` (a
    cross-dissolve of ``dissolve_frames`` frames, taken from both parts' ends)."""
    frames: list[np.ndarray] = []
    cuts: list[int] = []
    dissolves: list[tuple[int, int]] = []
    for i, part in enumerate(parts):
        shot = _scene_frames(part)
        if i and dissolve_after == i - 1:
            tail = frames[-dissolve_frames:]
            del frames[-dissolve_frames:]
            first = len(frames)
            for k, (a, b) in enumerate(zip(tail, shot[:dissolve_frames], strict=True)):
                w = (k + 1) / (dissolve_frames + 1)
                frames.append(np.round(a * (1 - w) + b * w).astype(np.uint8))
            dissolves.append((first, len(frames) - 1))
            shot = shot[dissolve_frames:]
        elif i:
            cuts.append(len(frames))
        frames.extend(shot)
    return Edit(frames, cuts, dissolves)


def with_flash(frames: list[np.ndarray], at: int, count: int) -> list[np.ndarray]:
    """``count`` frames from ``at`` on washed out towards white (a camera flash)."""
    out = list(frames)
    for k in range(at, at + count):
        out[k] = (255 - (255 - out[k].astype(np.int16)) // 6).astype(np.uint8)
    return out


def panned(seconds: float, pixels_per_frame: int, seed: int = 0) -> list[np.ndarray]:
    """A fast pan across one wide textured picture (one shot, everything moving)."""
    rng = np.random.default_rng(seed)
    count = round(seconds * FPS)
    width = WIDTH + pixels_per_frame * count
    coarse = rng.integers(0, 256, (HEIGHT // 8 + 2, width // 8 + 2, 3)).astype(np.float32)
    picture = np.kron(coarse, np.ones((8, 8, 1), dtype=np.float32))[:HEIGHT, :width]
    picture += rng.normal(0, 6, picture.shape)
    picture = np.clip(picture, 0, 255).astype(np.uint8)
    return [
        np.ascontiguousarray(picture[:, k * pixels_per_frame : k * pixels_per_frame + WIDTH])
        for k in range(count)
    ]


def write(frames: Sequence[np.ndarray], path: Path) -> Path:
    encode_h264(frames, str(path), FPS, WIDTH, HEIGHT, crf=20)
    return path


def _decoded(path: Path, width: int, height: int, start: float, seconds: float) -> Iterator[np.ndarray]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        first = None
        for frame in container.decode(stream):
            t = float(frame.pts * stream.time_base) if frame.pts is not None else 0.0
            first = t if first is None else first
            if t - first >= start + seconds:
                return
            if t - first >= start:
                yield frame.reformat(width, height, "rgb24").to_ndarray()


def joined_real(
    pieces: Sequence[tuple[Path, float, float]], path: Path, width: int = 320, height: int = 240
) -> list[int]:
    """Re-encode each piece (clip, start s, seconds) at ``width``x``height``, 25 fps frame for
    frame, one after another, into ``path``; returns the first frame of each piece after the first."""
    rate = Fraction(25)
    cuts: list[int] = []
    written = 0
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = 1 / rate
        stream.options = {"preset": "ultrafast", "crf": "20", "threads": "1"}
        for i, (clip, start, seconds) in enumerate(pieces):
            if i:
                cuts.append(written)
            for rgb in _decoded(clip, width, height, start, seconds):
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts, frame.time_base = written, 1 / rate
                written += 1
                for packet in stream.encode(frame):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return cuts
