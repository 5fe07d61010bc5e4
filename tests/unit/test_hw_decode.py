"""Which decoder a file gets: CPU here (no CUDA), NVDEC where a GPU and a build allow it."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from app.analysis.hw_decode import (
    Decoder,
    Paths,
    available_paths,
    choose_decoder,
    codec_has_cuda,
    decoder_for,
)
from tests.media import write_video

GPU = Paths(cuda=None, pyav=None, torchcodec=None)
"""A machine with a CUDA device and both hardware paths."""


@pytest.fixture(scope="module")
def h264(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("hw") / "clip.mp4", seconds=1.0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_the_file_is_decoded_on_the_cpu_and_says_why(h264: Path) -> None:
    name, reason = decoder_for(h264, "cuda")
    assert name is Decoder.CPU
    assert reason.startswith("no hardware decode: ") and "CUDA" in reason
    assert available_paths().cuda is not None


def test_a_cpu_job_decodes_on_the_cpu(h264: Path) -> None:
    name, reason = decoder_for(h264, "cpu")
    assert name is Decoder.CPU and "inference runs on cpu" in reason


def test_the_order_between_paths_and_the_codec_rule() -> None:
    assert codec_has_cuda("h264") and codec_has_cuda("hevc")
    assert not codec_has_cuda("rawvideo") and not codec_has_cuda("no-such-codec")
    assert choose_decoder("h264", "cuda:1", GPU).name is Decoder.PYAV_NVDEC
    no_pyav = GPU._replace(pyav="built without the cuda hwaccel")
    got = choose_decoder("h264", "cuda", no_pyav)
    assert got.name is Decoder.TORCHCODEC_CUDA and "built without the cuda hwaccel" in got.reason
    neither = no_pyav._replace(torchcodec="torchcodec is not installed")
    got = choose_decoder("hevc", "cuda", neither)
    assert got.name is Decoder.CPU and "torchcodec is not installed" in got.reason
    got = choose_decoder("rawvideo", "cuda", GPU)
    assert got == (Decoder.CPU, "NVDEC does not decode rawvideo: CPU decode")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_nvdec_frames_match_the_cpu_decode(h264: Path) -> None:
    from av.codec.hwaccel import HWAccel

    name, reason = decoder_for(h264, "cuda")
    if name is not Decoder.PYAV_NVDEC:
        pytest.skip(f"no PyAV NVDEC here: {reason}")
    with av.open(str(h264)) as cpu:
        expected = [f.to_ndarray(format="rgb24") for f in cpu.decode(video=0)]
    hw = HWAccel(device_type="cuda", allow_software_fallback=False)
    with av.open(str(h264), hwaccel=hw) as gpu:
        got = [f.to_ndarray(format="rgb24") for f in gpu.decode(video=0)]
    assert len(got) == len(expected)
    diff = max(int(np.abs(g.astype(np.int16) - e).max()) for g, e in zip(got, expected, strict=True))
    assert diff <= 2, f"NVDEC frames differ from the CPU decode by up to {diff} grey levels"
