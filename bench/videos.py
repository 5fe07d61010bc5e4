"""Deterministic benchmark videos: H.264 with B-frames at a realistic bitrate, textured content.

A large smoothed-noise texture pans across the frame, a bright square crosses it and every
frame gets a little sensor noise, so the decoder does real work (no flat areas, no skipped
macroblocks). Same arguments, same bytes: the random texture comes from a fixed seed and
x264 runs with a fixed thread count. Files are cached under ``bench/out/videos``.

    .venv/bin/python bench/videos.py 1280x720 --seconds 60
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

OUT = Path(__file__).resolve().parent / "out" / "videos"
FPS = 30
GOP = 60
"""Keyframe every 2 s (a common streaming setting; closed GOPs, 3 B-frames between P)."""
BITRATES = {360: 1_000_000, 720: 4_000_000, 1080: 8_000_000}
"""Bits per second by frame height: YouTube's recommended uploads for 30 fps SDR."""


def bitrate_for(height: int) -> int:
    nearest = min(BITRATES, key=lambda h: abs(h - height))
    return BITRATES[nearest]


def _texture(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth blobs plus fine grain, twice the frame size so it can pan."""
    big_h, big_w = 2 * height, 2 * width
    coarse = rng.integers(0, 256, size=(big_h // 16 + 2, big_w // 16 + 2, 3), dtype=np.uint8)
    smooth = np.repeat(np.repeat(coarse, 16, axis=0), 16, axis=1)[:big_h, :big_w].astype(np.int16)
    grain = rng.integers(-40, 41, size=(big_h, big_w, 3), dtype=np.int16)
    out: np.ndarray = np.clip(smooth // 2 + 64 + grain, 0, 255).astype(np.uint8)
    return out


def write_bench_video(width: int, height: int, seconds: float, *, seed: int = 0, out_dir: Path = OUT) -> Path:
    """Write (or reuse) ``{w}x{h}_{s}s.mp4``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{width}x{height}_{seconds:g}s.mp4"
    if path.is_file():
        return path
    rng = np.random.default_rng(seed)
    texture = _texture(width, height, rng)
    noise = [rng.integers(-6, 7, size=(height, width, 3), dtype=np.int16) for _ in range(7)]
    side = height // 5
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = bitrate_for(height)
        stream.codec_context.time_base = Fraction(1, FPS)
        stream.codec_context.thread_count = 2
        stream.options = {
            "preset": "fast",
            "g": str(GOP),
            "keyint_min": str(GOP),
            "bf": "3",
            "sc_threshold": "0",
            "maxrate": str(2 * bitrate_for(height)),
            "bufsize": str(2 * bitrate_for(height)),
        }
        for i in range(round(seconds * FPS)):
            t = i / FPS
            y0 = int((t * 37) % height)
            x0 = int((t * 61) % width)
            img = texture[y0 : y0 + height, x0 : x0 + width].astype(np.int16) + noise[i % len(noise)]
            sx = int((t * width / 4) % (width - side))
            img[height // 3 : height // 3 + side, sx : sx + side] = 235
            frame = av.VideoFrame.from_ndarray(np.clip(img, 0, 255).astype(np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.rename(path)
    return path


def repeat_video(source: Path, times: int, out_dir: Path = OUT) -> Path:
    """``source`` played ``times`` times in a row, by remuxing packets (no re-encode): a long
    video in seconds. Each copy starts on a closed-GOP keyframe, so the result decodes cleanly."""
    path = out_dir / f"{source.stem}_x{times}.mp4"
    if path.is_file():
        return path
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(source)) as src, av.open(str(tmp), mode="w") as dst:
        in_stream = src.streams.video[0]
        out_stream = dst.add_stream_from_template(in_stream)
        packets = [p for p in src.demux(in_stream) if p.size]
        span = max(int(p.pts) + int(p.duration or 1) for p in packets) - min(int(p.pts) for p in packets)
        dts_span = span
        for k in range(times):
            for p in packets:
                clone = av.Packet(bytes(p))
                clone.pts = int(p.pts) + k * span
                clone.dts = int(p.dts) + k * dts_span if p.dts is not None else None
                clone.time_base = p.time_base
                clone.duration = p.duration
                clone.is_keyframe = p.is_keyframe
                clone.stream = out_stream
                dst.mux(clone)
    tmp.rename(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("size", help="WIDTHxHEIGHT")
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    print(write_bench_video(width, height, args.seconds))


if __name__ == "__main__":
    main()
