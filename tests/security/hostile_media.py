"""Odd and hostile media written deterministically with PyAV (plus a few byte patches)."""

from __future__ import annotations

import random
import struct
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from tests.media import write_video


def truncated(source: Path, target: Path, fraction: float) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


def faststart(source: Path, target: Path) -> Path:
    """The same MP4 with its index (moov) moved before the media data."""
    with av.open(str(source)) as src, av.open(str(target), "w", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return target


def bit_flipped(source: Path, target: Path, *, seed: int, flips: int, skip: int = 64) -> Path:
    """``flips`` single-bit errors at seeded positions after the first ``skip`` bytes."""
    data = bytearray(source.read_bytes())
    rng = random.Random(seed)
    for _ in range(flips):
        pos = rng.randrange(skip, len(data))
        data[pos] ^= 1 << rng.randrange(8)
    target.write_bytes(bytes(data))
    return target


def huge_declared_avi(target: Path, width: int = 30_000, height: int = 30_000) -> Path:
    """A tiny rawvideo AVI whose headers (avih + strf) declare ``width`` x ``height``."""
    small = write_video(
        target.with_suffix(".src.avi"), seconds=0.2, fps=10, width=16, height=16, codec="rawvideo"
    )
    data = bytearray(small.read_bytes())
    avih = data.index(b"avih") + 8  # dwMicroSecPerFrame ... dwWidth at +32, dwHeight at +36
    data[avih + 32 : avih + 40] = struct.pack("<II", width, height)
    strf = data.index(b"strf") + 8  # BITMAPINFOHEADER: biSize, biWidth, biHeight
    data[strf + 4 : strf + 12] = struct.pack("<ii", width, height)
    target.write_bytes(bytes(data))
    small.unlink()
    return target


def _png(width: int, height: int) -> bytes:
    """A grey PNG of zeros: a few hundred KB that decode to width*height bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    packer = zlib.compressobj(9)
    row = bytes(width + 1)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def png_bomb_mov(
    target: Path, side: int = 12_000, frames: int = 2, *, real_frames: int = 0, rate: int = 1
) -> Path:
    """A MOV whose track says 64x64 but whose PNG frames decode to ``side`` x ``side``, after
    ``real_frames`` true 64x64 frames."""
    bomb = _png(side, side)
    with av.open(str(target), "w", format="mov") as container:
        stream = container.add_stream("png", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "gray"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64), np.uint8), format="gray")
            frame.pts = i
            for packet in stream.encode(frame):
                if i < real_frames:
                    container.mux(packet)
                    continue
                forged = av.Packet(bomb)
                forged.pts, forged.dts, forged.time_base = packet.pts, packet.dts, packet.time_base
                forged.stream = packet.stream
                container.mux(forged)
        for _ in stream.encode():  # PNG is intra-only: nothing is held back
            pass
    return target


def growing_png_mov(target: Path) -> Path:
    """A MOV of PNG frames: the first 10 are 64x64, the next 10 200x200 (a decoder refusing the
    bigger size resets its context to 0x0: the EINVAL case)."""
    return png_bomb_mov(target, side=200, frames=20, real_frames=10, rate=10)


def huge_sps_h264(target: Path, side: int = 6144) -> Path:
    """Raw Annex-B H.264, one black ``side`` x ``side`` frame (about 110 KB for 6144): the
    size is declared by the codec itself (the SPS), so it survives probing, unlike the AVI's."""
    return write_video(
        target,
        seconds=1.0,
        fps=1,
        width=side,
        height=side,
        frame_fn=lambda i, t, w, h: np.zeros((h, w, 3), np.uint8),
        options={"crf": "51", "threads": "1"},
    )


def many_streams(target: Path, audio_streams: int, fmt: str) -> Path:
    """One short video stream and ``audio_streams`` silent PCM/MP2 tracks."""
    audio_codec = "mp2" if fmt == "mpegts" else "pcm_s16le"
    with av.open(str(target), "w", format=fmt) as container:
        video = container.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.options = {"preset": "ultrafast"}
        audios = [container.add_stream(audio_codec, rate=16_000, layout="mono") for _ in range(audio_streams)]
        samples = 1152 if audio_codec == "mp2" else 1600
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), format="rgb24")
            frame.pts = i
            for packet in video.encode(frame):
                container.mux(packet)
            for audio in audios:
                chunk = av.AudioFrame.from_ndarray(
                    np.zeros((1, samples), np.int16), format="s16", layout="mono"
                )
                chunk.sample_rate, chunk.pts = 16_000, i * samples
                for packet in audio.encode(chunk):
                    container.mux(packet)
        for stream in [video, *audios]:
            for packet in stream.encode():
                container.mux(packet)
    return target


def still_png(target: Path) -> Path:
    target.write_bytes(_png(64, 48))
    return target


def audio_only(target: Path, seconds: float = 1.0, fmt: str = "matroska") -> Path:
    with av.open(str(target), "w", format=fmt) as container:
        audio = container.add_stream("pcm_s16le", rate=16_000, layout="mono")
        for i in range(int(seconds * 10)):
            chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1600), np.int16), format="s16", layout="mono")
            chunk.sample_rate, chunk.pts = 16_000, i * 1600
            for packet in audio.encode(chunk):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    return target


def interlaced_mpeg2(target: Path, seconds: float = 1.0) -> Path:
    """MPEG-2 coded as interlaced (field DCT, field motion estimation, top field first)."""
    return write_video(
        target,
        seconds=seconds,
        fps=25,
        width=160,
        height=128,
        codec="mpeg2video",
        options={"flags": "+ilme+ildct", "top": "1"},
    )


def resolution_change_h264(target: Path) -> Path:
    """Raw Annex-B H.264: 1 s at 128x96, then 1 s at 192x144 (a new SPS mid-stream)."""
    parts = [
        write_video(target.with_suffix(f".{i}.h264"), seconds=1.0, width=w, height=h)
        for i, (w, h) in enumerate([(128, 96), (192, 144)])
    ]
    target.write_bytes(b"".join(p.read_bytes() for p in parts))
    for part in parts:
        part.unlink()
    return target


def gif_animation(target: Path) -> Path:
    with av.open(str(target), "w", format="gif") as container:
        stream = container.add_stream("gif", rate=5)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "rgb8"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 50, np.uint8), format="rgb24")
            frame = frame.reformat(format="rgb8")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return target


def vfr_timestamps(seconds: float = 3.0) -> list[float]:
    """Alternating 1/60 s and 1/15 s frame gaps, plus a 0.5 s freeze in the middle."""
    times, t, i = [], 0.0, 0
    while t < seconds:
        times.append(t)
        t += (1 / 60 if i % 2 else 1 / 15) + (0.5 if i == 20 else 0.0)
        i += 1
    return [float(Fraction(x).limit_denominator(90_000)) for x in times]
