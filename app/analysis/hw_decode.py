"""Which decoder would decode a file on this machine, and why: NVDEC or the CPU.

Two hardware paths exist on a CUDA machine: PyAV's hardware acceleration (FFmpeg's NVDEC
hwaccel: ``av.open(path, hwaccel=HWAccel(device_type="cuda"))``) and torchcodec's CUDA
decoder (an optional package). Each needs three things: a CUDA device with its driver, a
build that has the path (FFmpeg compiled with the cuda hwaccel; torchcodec installed), and
a codec that the path decodes (the codec's FFmpeg decoder lists a cuda hardware config).
When any of them is missing the file is decoded on the CPU (FFmpeg threads, several decode
children), which is always possible; the reason is recorded so a job's provenance can say
why its frames came from the CPU.

This module decides; it does not decode. The order between the two hardware paths is
PyAV's first (the decode child already uses PyAV, so its sampling and exact-time rules
hold unchanged) until a GPU measurement (``bench/gpu.py``) says otherwise.
"""

from __future__ import annotations

import ctypes
import importlib.util
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import NamedTuple

import av


class Decoder(StrEnum):
    CPU = "cpu"
    PYAV_NVDEC = "pyav-nvdec"
    TORCHCODEC_CUDA = "torchcodec-cuda"


class DecoderChoice(NamedTuple):
    """The decoder a file gets and the reason, in words, for the job's provenance."""

    name: Decoder
    reason: str


class Paths(NamedTuple):
    """What this process has: a CUDA device, and each hardware path (None when present,
    else why not)."""

    cuda: str | None
    pyav: str | None
    torchcodec: str | None


@cache
def cuda_devices() -> int | str:
    """The number of CUDA devices the driver sees, or why there are none. Asks the driver
    (``libcuda``) directly: no torch import, no CUDA context kept."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return "no CUDA driver (libcuda.so.1 not found)"
    if lib.cuInit(0) != 0:
        return "the CUDA driver did not initialise (no GPU visible to this process?)"
    count = ctypes.c_int(0)
    if lib.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value == 0:
        return "the CUDA driver sees no device"
    return count.value


def pyav_nvdec_missing() -> str | None:
    """None when this PyAV's FFmpeg was built with the cuda hwaccel, else why not."""
    try:
        from av.codec.hwaccel import hwdevices_available
    except ImportError:
        return f"PyAV {av.__version__} has no hardware acceleration API"
    if "cuda" not in hwdevices_available():
        return "this PyAV's FFmpeg was built without the cuda hwaccel"
    return None


def torchcodec_missing() -> str | None:
    """None when torchcodec (with its CUDA decoder) can be imported, else why not."""
    if importlib.util.find_spec("torchcodec") is None:
        return "torchcodec is not installed"
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401
    except Exception as exc:  # a broken install: wrong torch, missing FFmpeg libraries
        return f"torchcodec does not import: {exc}"
    return None


def available_paths() -> Paths:
    devices = cuda_devices()
    return Paths(
        cuda=devices if isinstance(devices, str) else None,
        pyav=pyav_nvdec_missing(),
        torchcodec=torchcodec_missing(),
    )


def codec_has_cuda(codec: str) -> bool:
    """Whether FFmpeg's decoder for ``codec`` (h264, hevc, vp9, av1...) can use NVDEC."""
    try:
        configs = av.codec.Codec(codec, "r").hardware_configs
    except Exception:  # unknown codec name
        return False
    return any(c.device_type.name == "cuda" for c in configs)


def video_codec(path: Path) -> str:
    with av.open(str(path)) as container:
        return str(container.streams.video[0].codec_context.name)


def choose_decoder(codec: str, device: str, paths: Paths | None = None) -> DecoderChoice:
    """The decoder for a video of ``codec`` when inference runs on ``device``."""
    if not device.startswith("cuda"):
        return DecoderChoice(Decoder.CPU, f"inference runs on {device}: frames are decoded on the CPU")
    paths = available_paths() if paths is None else paths
    if paths.cuda is not None:
        return DecoderChoice(Decoder.CPU, f"no hardware decode: {paths.cuda}")
    if not codec_has_cuda(codec):
        return DecoderChoice(Decoder.CPU, f"NVDEC does not decode {codec}: CPU decode")
    if paths.pyav is None:
        return DecoderChoice(Decoder.PYAV_NVDEC, f"{codec} on NVDEC through PyAV's cuda hwaccel")
    if paths.torchcodec is None:
        return DecoderChoice(Decoder.TORCHCODEC_CUDA, f"{codec} on NVDEC through torchcodec ({paths.pyav})")
    return DecoderChoice(Decoder.CPU, f"no hardware decode path: {paths.pyav}; {paths.torchcodec}")


def decoder_for(path: Path, device: str) -> DecoderChoice:
    """The decoder ``path`` would get on this machine and build (for provenance)."""
    return choose_decoder(video_codec(path), device)
