"""Portable artifacts of a catalog model (ONNX, OpenVINO IR, TorchScript, torch.export), verified.

Export makes three changes that leave the arithmetic alone (docs/MODELS.md, "Checkpoint files"):

* pytorchvideo's ``Swish`` (a custom ``autograd.Function``, which neither tracing nor
  ONNX can record) becomes ``nn.SiLU`` (the same function);
* SlowFast's ``[slow, fast]`` list input becomes two tensor arguments;
* the batch dimension stays dynamic.

An OpenVINO IR is that ONNX graph converted by OpenVINO, weights kept in f32.

Then the artifact is checked against the PyTorch model as the service runs it
(``export_verification``). Verification fails when the output difference exceeds the
tolerance, or when the top-1 differs on a clip whose reference top-1 leads its runner-up
by more than the tolerance. The report is written next to the artifact
(``artifacts.report_path``); a failed artifact is removed. An ONNX or OpenVINO export that
passed is also timed against PyTorch as the worker would run each (``export_speed``); the
``auto`` backend (``backend_choice``) reads those figures to decide which one the worker
runs. An OpenVINO export also measures bf16 against f32 (``export_bf16``).
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from app.analysis.artifacts import (
    ExportFormat,
    artifact_files,
    artifact_path,
    artifacts_sha256,
    input_names,
    report_path,
)
from app.analysis.export_bf16 import Bf16Check, check_bf16
from app.analysis.export_modules import OnnxModule, OpenVinoModule
from app.analysis.export_speed import Speed, measure_speed, speed_of
from app.analysis.export_verification import Comparison, Runner, compare, random_clips, real_clips
from app.analysis.frame_choice import torch_answers
from app.analysis.openvino_runtime import CompiledIR, Precision, cache_dir_for, convert_onnx
from app.analysis.spec import ModelSpec

BATCH_AXIS = "batch"
ONNX_OPSET = 17
TIMED = (ExportFormat.ONNX, ExportFormat.OPENVINO)
"""The formats a worker can run (``backends.py``): timed against PyTorch for ``auto``."""


def replace_swish(model: nn.Module) -> int:
    """Swap every pytorchvideo ``Swish`` for ``nn.SiLU`` in place; returns how many."""
    from pytorchvideo.layers.swish import Swish

    swapped = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, Swish):
                setattr(module, name, nn.SiLU())
                swapped += 1
    return swapped


class OneInput(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.model(clip)
        return out


class TwoInputs(nn.Module):
    """SlowFast takes a list; exported graphs take the two pathways as tensors."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, slow: torch.Tensor, fast: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.model([slow, fast])
        return out


def exportable(model: nn.Module, spec: ModelSpec) -> tuple[nn.Module, int]:
    """A copy ready to trace or export, and how many Swish modules it swapped."""
    clone = copy.deepcopy(model).eval()
    swapped = replace_swish(clone)
    wrapped = TwoInputs(clone) if spec.alpha else OneInput(clone)
    return wrapped.eval(), swapped


def write_artifact(module: nn.Module, spec: ModelSpec, fmt: ExportFormat, target: Path) -> None:
    example = tuple(torch.cat([a, a]) for a in random_clips(spec, 1, seed=1)[0])  # batch of 2
    names = input_names(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name.split('.')[0]}.part{fmt.suffix}")
    try:
        with torch.inference_mode(False), torch.no_grad():
            if fmt is ExportFormat.ONNX:
                _write_onnx(module, example, names, tmp)
            elif fmt is ExportFormat.OPENVINO:
                with tempfile.TemporaryDirectory() as scratch:
                    onnx = Path(scratch) / "model.onnx"
                    _write_onnx(module, example, names, onnx)
                    convert_onnx(onnx, tmp)
            elif fmt is ExportFormat.TORCHSCRIPT:
                traced = torch.jit.trace(module, example, check_trace=False)
                torch.jit.save(traced, str(tmp))
            elif fmt is ExportFormat.TORCH_EXPORT:
                batch = torch.export.Dim(BATCH_AXIS, min=1, max=1024)
                program = torch.export.export(
                    module, example, dynamic_shapes={name: {0: batch} for name in names}
                )
                torch.export.save(program, str(tmp))
            else:
                raise ValueError(f"{fmt.value} artifacts are written by export_tf")
        for part, final in reversed(list(zip(artifact_files(tmp), artifact_files(target), strict=True))):
            part.replace(final)  # an IR's weights before its graph: a graph is never without them
    finally:
        for part in artifact_files(tmp):
            part.unlink(missing_ok=True)


def _write_onnx(module: nn.Module, example: tuple[torch.Tensor, ...], names: list[str], path: Path) -> None:
    axes = {name: {0: BATCH_AXIS} for name in [*names, "scores"]}
    torch.onnx.export(
        module,
        example,
        str(path),
        dynamo=False,
        input_names=names,
        output_names=["scores"],
        dynamic_axes=axes,
        opset_version=ONNX_OPSET,
    )


@dataclass
class ExportReport:
    model: str
    format: str
    artifact: str
    artifact_sha256: str
    artifact_bytes: int
    weights_sha256: str
    swish_replaced: int
    export_seconds: float
    atol: float
    random: Comparison
    real: Comparison
    passed: bool
    versions: dict[str, str] = field(default_factory=dict)
    clip_shape: list[int] = field(default_factory=list)
    """(frames, height, width) of the clips the artifact takes: the catalog's 1-crop recipe
    when it was exported (``backend_choice.verified_export`` refuses it once that changes)."""
    speed: Speed | None = None
    bf16: Bf16Check | None = None
    frame_choice: dict[str, Any] | None = None
    """torch's frame choice on this CPU where the emulation may differ (``frame_choice``)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def export_clip_shape(spec: ModelSpec) -> list[int]:
    """The clip geometry an export of ``spec`` is made for: (frames, crop, crop)."""
    return [spec.frames, spec.crop, spec.crop]


def export_model(
    models_dir: Path,
    spec: ModelSpec,
    fmt: ExportFormat,
    *,
    allowed_formats: Sequence[str],
    video: Path | None = None,
    clips: int = 4,
    atol: float = 1e-4,
    speed: bool = True,
    threads: int = 1,
    batch: int = 1,
    rounds: int = 5,
    precision_videos: Sequence[Path] | None = None,
) -> ExportReport:
    """Export ``spec``'s weights to ``fmt`` next to them, verify, write the report. An ONNX
    or OpenVINO export that passed is also timed (unless ``speed`` is off) with the worker's
    ``threads`` and ``batch`` size, ``rounds`` interleaved rounds; an OpenVINO one also
    measures bf16 on ``precision_videos`` (default: the known-answer demo videos)."""
    from app.analysis.loader import ModelLoader
    from app.analysis.results import versions

    loaded = ModelLoader(models_dir, cache_bytes=0).load(spec)
    reference = loaded.module.eval()
    module, swapped = exportable(reference, spec)
    target = artifact_path(models_dir, spec, fmt)
    started = time.monotonic()
    write_artifact(module, spec, fmt, target)
    seconds = time.monotonic() - started
    runner = Runner(fmt, target, input_names(spec))
    random_cmp = compare(reference, runner, random_clips(spec, clips), spec, atol)
    real_cmp = compare(reference, runner, real_clips(spec, video, clips, allowed_formats), spec, atol)
    passed = all(
        c.max_abs_diff <= atol and c.top1_disagreements_beyond_tolerance == 0 for c in (random_cmp, real_cmp)
    )
    timing, bf16 = None, None
    if speed and passed and fmt in TIMED:
        modules = _worker_modules(models_dir, spec, fmt, target, threads)
        ms = measure_speed(reference, modules, spec, threads=threads, batch=batch, rounds=rounds)
        timing = speed_of(fmt.value, ms, threads=threads, batch=batch, rounds=rounds)
        if fmt is ExportFormat.OPENVINO:
            bf16 = check_bf16(
                target, spec, threads=threads, ms=ms, allowed_formats=allowed_formats, videos=precision_videos
            )
    report = ExportReport(
        model=spec.name,
        format=fmt.value,
        artifact=target.name,
        artifact_sha256=artifacts_sha256(artifact_files(target)),
        artifact_bytes=sum(part.stat().st_size for part in artifact_files(target)),
        weights_sha256=loaded.sha256,
        swish_replaced=swapped,
        export_seconds=round(seconds, 3),
        atol=atol,
        random=random_cmp,
        real=real_cmp,
        passed=passed,
        versions=versions() | _extra_versions(fmt),
        clip_shape=export_clip_shape(spec),
        speed=timing,
        bf16=bf16,
        frame_choice=torch_answers(spec) if passed and fmt in TIMED else None,
    )
    report_path(target).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    if not passed:
        for part in artifact_files(target):
            part.unlink(missing_ok=True)
    return report


def _worker_modules(
    models_dir: Path, spec: ModelSpec, fmt: ExportFormat, target: Path, threads: int
) -> dict[str, nn.Module]:
    """The modules a worker would run for this export, by backend name (OpenVINO: f32 and
    bf16, compiled into the worker's on-disk cache, which the worker then finds warm)."""
    if fmt is ExportFormat.ONNX:
        return {"onnx": OnnxModule(target, input_names(spec), threads)}
    cache = cache_dir_for(models_dir)
    return {
        name: OpenVinoModule(CompiledIR(target, threads=threads, precision=precision, cache_dir=cache))
        for name, precision in (("openvino", Precision.F32), ("openvino-bf16", Precision.BF16))
    }


def _extra_versions(fmt: ExportFormat) -> dict[str, str]:
    if fmt not in TIMED:
        return {}
    import onnx
    import onnxruntime

    versions = {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "opset": str(ONNX_OPSET)}
    if fmt is ExportFormat.OPENVINO:
        import openvino

        versions["openvino"] = openvino.__version__
    return versions
