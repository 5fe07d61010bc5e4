"""bf16 for an OpenVINO export (``models export NAME --format openvino``): what it costs and gains.

The IR itself is the verified ONNX graph converted by OpenVINO (``export.write_artifact``)
with f32 weights; precision is chosen when it is compiled, so one IR serves f32 and bf16.
f32 is verified against PyTorch like every export. bf16 cannot meet that tolerance (8
mantissa bits), so it is only run when a user asks for it per model
(``VAS_BACKENDS='{"x3d_s": "openvino-bf16"}'``), and the export report records what that
choice costs and gains: bf16's speed beside f32's and PyTorch's (one interleaved run),
and how often bf16's top-1 agrees with f32's on the clips of the known-answer demo
videos. Where the CPU has no native bf16, OpenVINO compiles f32 anyway; the report says
so (``compiled_precision``) and the backend's provenance too.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from app.analysis.export_verification import real_clips
from app.analysis.openvino_runtime import CompiledIR, Precision, cpu_capabilities
from app.analysis.spec import ModelSpec

_SCRIPT = [
    ("moving right", 4.0),
    ("static", 4.0),
    ("moving up", 4.0),
    ("moving left", 4.0),
    ("rotating", 4.0),
    ("moving down", 4.0),
    ("flashing", 4.0),
]
KNOWN_ANSWER_VIDEOS = {
    "known-answer-192x144.mp4": (_SCRIPT, 192, 144, 2024),
    "known-answer-320x240.mp4": ([_SCRIPT[i] for i in (6, 2, 4, 0, 5, 1, 3)], 320, 240, 77),
}
"""The two scripted videos of tests/known_answer/test_demo_model.py (every demo class once)."""

CLIPS_PER_VIDEO = 16


@dataclass
class Bf16Check:
    """What running this IR in bf16 instead of f32 changes, measured on this CPU."""

    cpu_capabilities: list[str]
    compiled_precision: str
    """What OpenVINO compiled when asked for bf16: ``f32`` on a CPU without native bf16."""
    f32_ms_per_clip: float
    bf16_ms_per_clip: float
    videos: list[str]
    clips: int
    top1_agreement_with_f32: float
    max_abs_diff_vs_f32: float
    note: str


def known_answer_videos(folder: Path) -> list[Path]:
    """Write the known-answer demo videos into ``folder`` (about 10 s each on two vCPUs)."""
    from app.demo.synthetic import write_scripted_video

    paths = []
    for name, (script, width, height, seed) in KNOWN_ANSWER_VIDEOS.items():
        path = folder / name
        write_scripted_video(path, script, fps=30, width=width, height=height, seed=seed)
        paths.append(path)
    return paths


def check_bf16(
    xml: Path,
    spec: ModelSpec,
    *,
    threads: int,
    ms: Mapping[str, float],
    allowed_formats: Sequence[str],
    videos: Sequence[Path] | None = None,
) -> Bf16Check:
    """bf16 against f32 on every clip (up to ``CLIPS_PER_VIDEO`` each) of ``videos``
    (default: the known-answer demo videos); ``ms`` holds both precisions' timings."""
    f32 = CompiledIR(xml, threads=threads, precision=Precision.F32, cache_dir=None)
    bf16 = CompiledIR(xml, threads=threads, precision=Precision.BF16, cache_dir=None)
    with tempfile.TemporaryDirectory() as tmp:
        paths = list(videos) if videos is not None else known_answer_videos(Path(tmp))
        clips = [c for v in paths for c in real_clips(spec, v, CLIPS_PER_VIDEO, allowed_formats)]
    agree, worst = 0, 0.0
    for clip in clips:
        arrays = [path.numpy() for path in clip]
        want, got = torch.from_numpy(f32.infer(arrays)), torch.from_numpy(bf16.infer(arrays))
        agree += int(want.argmax()) == int(got.argmax())
        worst = max(worst, float((want - got).abs().max()))
    capabilities = cpu_capabilities()
    if bf16.precision is Precision.BF16:
        note = "bf16 runs natively on this CPU"
    else:
        note = (
            f"this CPU has no native bf16 (OpenVINO's capabilities: {', '.join(capabilities)}): "
            "asked for bf16, OpenVINO compiles f32, so openvino-bf16 runs as openvino"
        )
    return Bf16Check(
        cpu_capabilities=capabilities,
        compiled_precision=bf16.precision.value,
        f32_ms_per_clip=ms["openvino"],
        bf16_ms_per_clip=ms["openvino-bf16"],
        videos=[p.name for p in paths],
        clips=len(clips),
        top1_agreement_with_f32=agree / max(len(clips), 1),
        max_abs_diff_vs_f32=worst,
        note=note,
    )
