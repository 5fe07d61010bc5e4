"""H.264 mp4 encoding and decoding of RGB frames (PyAV, imported only when called).

Test videos and training clips go through the same libx264 settings, so the demo
model learns the compression artefacts it meets at inference. Single-threaded x264
keeps the bitstream the same on every machine.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from app.demo.raster import Frame


def encode_h264(
    frames: Iterable[Frame],
    target: str | BinaryIO,
    fps: int,
    width: int,
    height: int,
    crf: int,
    *,
    rotation: int = 0,
) -> None:
    """Write ``frames`` (RGB uint8, ``height`` x ``width``) as a libx264 yuv420p mp4 to ``target``
    (``rotation``: display-matrix degrees, as phones record portrait video)."""
    import av

    if width % 2 or height % 2:
        raise ValueError("yuv420p H.264 needs even width and height")
    rate = Fraction(fps)
    with av.open(target, mode="w", format="mp4") as container:  # type: ignore[call-overload]
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        stream.codec_context.time_base = 1 / rate
        # One encoder thread: the bitstream is then the same on every machine (x264's
        # output depends on its thread count), and short encodes are much faster.
        stream.options = {"preset": "ultrafast", "crf": str(crf), "threads": "1"}
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _rgb(frame: Any) -> Frame:
    out: Frame = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
    return out


def h264_round_trip(frames: Sequence[Frame], fps: int = 30, crf: int = 23) -> list[Frame]:
    """Encode ``frames`` with libx264 in memory and decode them again (compression artefacts)."""
    import av

    height, width = frames[0].shape[:2]
    buffer = io.BytesIO()
    encode_h264(frames, buffer, fps, width, height, crf)
    buffer.seek(0)
    with av.open(buffer, mode="r") as container:
        return [_rgb(f) for f in container.decode(video=0)]


def read_video_rgb(path: str | Path) -> tuple[list[Frame], list[float]]:
    """Decode every frame of the first video stream: (RGB frames, presentation times in seconds)."""
    import av

    frames: list[Frame] = []
    times: list[float] = []
    with av.open(str(path), mode="r") as container:
        stream = container.streams.video[0]
        for i, frame in enumerate(container.decode(stream)):
            frames.append(_rgb(frame))
            times.append(
                float(frame.time) if frame.time is not None else i / float(stream.average_rate or 30)
            )
    return frames, times
