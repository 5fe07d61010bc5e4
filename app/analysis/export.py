"""Portable artifacts of a catalog model (ONNX, TorchScript, torch.export), verified.

Export makes three changes that leave the arithmetic alone (ZOO.md section 3):

* pytorchvideo's ``Swish`` (a custom ``autograd.Function``, which neither tracing nor
  ONNX can record) becomes ``nn.SiLU`` (the same function);
* SlowFast's ``[slow, fast]`` list input becomes two tensor arguments;
* the batch dimension stays dynamic.

Then the artifact is checked against the PyTorch model as the service runs it (Swish
and all): the same random clips and real clips (decoded and transformed by the
service's own pipeline) go through both; the report gives the largest absolute
output difference and the top-1 agreement. Verification fails when the difference
exceeds the tolerance, or when the top-1 differs on a clip whose reference top-1
leads its runner-up by more than the tolerance (near-ties may flip on rounding).
The report is written next to the artifact (``<artifact>.json``); a failed artifact
is removed.

An ONNX export is also timed against PyTorch as the worker would run each (its torch
threads and batch size, the same ONNX Runtime session options), A and B interleaved
after a warm-up and medians taken, so background load hits both alike. The ``auto``
backend (``backends.py``) reads those figures to decide which one the worker runs.
"""

from __future__ import annotations

import copy
import hashlib
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import torch
from torch import nn

from app.analysis.spec import ModelSpec

BATCH_AXIS = "batch"
ONNX_OPSET = 17


class ExportFormat(StrEnum):
    ONNX = "onnx"
    TORCHSCRIPT = "torchscript"
    TORCH_EXPORT = "torch-export"

    @property
    def suffix(self) -> str:
        return {"onnx": ".onnx", "torchscript": ".ts.pt", "torch-export": ".pt2"}[self.value]


def artifact_path(models_dir: Path, spec: ModelSpec, fmt: ExportFormat) -> Path:
    """``X3D_XS.pyth`` -> ``X3D_XS.onnx`` (next to the weights)."""
    return models_dir / (Path(spec.weights).name.split(".")[0] + fmt.suffix)


def report_path(artifact: Path) -> Path:
    return artifact.with_name(artifact.name + ".json")


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


def input_names(spec: ModelSpec) -> list[str]:
    return ["slow", "fast"] if spec.alpha else ["clip"]


def random_clips(spec: ModelSpec, count: int, *, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    """Normalised-pixel-like noise in the model's input geometry, one clip per entry."""
    gen = torch.Generator().manual_seed(seed)
    shape = (1, 3, spec.frames, spec.crop, spec.crop)
    out: list[tuple[torch.Tensor, ...]] = []
    for _ in range(count):
        fast = torch.randn(shape, generator=gen)
        if spec.alpha:
            idx = torch.linspace(0, spec.frames - 1, spec.frames // spec.alpha).long()
            out.append((fast.index_select(2, idx), fast))
        else:
            out.append((fast,))
    return out


def real_clips(
    spec: ModelSpec, video: Path | None, count: int, allowed_formats: Sequence[str]
) -> list[tuple[torch.Tensor, ...]]:
    """Clips decoded and transformed exactly as a job would (default: a generated motion video)."""
    from app.analysis.decode import decode_clips
    from app.analysis.plan import plan_for
    from app.analysis.scan import scan_video
    from app.analysis.transforms import ClipTransform
    from app.options import JobOptions

    with tempfile.TemporaryDirectory() as tmp:
        if video is None:
            from app.demo.synthetic import write_scripted_video

            video = Path(tmp) / "motion.mp4"
            script = [("moving right", 2.0), ("rotating", 2.0), ("flashing", 2.0), ("moving up", 2.0)]
            write_scripted_video(video, script, width=320, height=240, seed=7)
        scan = scan_video(video, allowed_formats)
        plan = plan_for(spec, JobOptions(), scan.frame_times, scan.duration)
        transform = ClipTransform.for_spec(spec, 1)
        out: list[tuple[torch.Tensor, ...]] = []
        clips = decode_clips(video, allowed_formats, scan, plan, transform.prepare_frame)
        try:
            for clip in clips:
                view = transform.views(clip.frames)[0]
                paths = tuple(view) if isinstance(view, list) else (view,)
                out.append(tuple(p.unsqueeze(0) for p in paths))
                if len(out) >= count:
                    break
        finally:
            clips.close()
    return out


# --------------------------------------------------------------------------- writing


def write_artifact(module: nn.Module, spec: ModelSpec, fmt: ExportFormat, target: Path) -> None:
    example = tuple(torch.cat([a, a]) for a in random_clips(spec, 1, seed=1)[0])  # batch of 2
    names = input_names(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name.split('.')[0]}.part{fmt.suffix}")
    try:
        with torch.inference_mode(False), torch.no_grad():
            if fmt is ExportFormat.ONNX:
                axes = {name: {0: BATCH_AXIS} for name in [*names, "scores"]}
                torch.onnx.export(
                    module,
                    example,
                    str(tmp),
                    dynamo=False,
                    input_names=names,
                    output_names=["scores"],
                    dynamic_axes=axes,
                    opset_version=ONNX_OPSET,
                )
            elif fmt is ExportFormat.TORCHSCRIPT:
                traced = torch.jit.trace(module, example, check_trace=False)
                torch.jit.save(traced, str(tmp))
            else:
                batch = torch.export.Dim(BATCH_AXIS, min=1, max=1024)
                program = torch.export.export(
                    module, example, dynamic_shapes={name: {0: batch} for name in names}
                )
                torch.export.save(program, str(tmp))
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


class Runner:
    """Runs an exported artifact: tensors in, a (B, classes) float tensor out."""

    def __init__(self, fmt: ExportFormat, path: Path, names: Sequence[str], threads: int = 1) -> None:
        self.fmt, self.names = fmt, list(names)
        if fmt is ExportFormat.ONNX:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        elif fmt is ExportFormat.TORCHSCRIPT:
            self.module = torch.jit.load(str(path), map_location="cpu").eval()
        else:
            self.module = torch.export.load(str(path)).module()

    def __call__(self, *paths: torch.Tensor) -> torch.Tensor:
        if self.fmt is ExportFormat.ONNX:
            feeds = {name: p.detach().cpu().numpy() for name, p in zip(self.names, paths, strict=True)}
            return torch.from_numpy(self.session.run(None, feeds)[0])
        with torch.inference_mode():
            out: torch.Tensor = self.module(*paths)
        return out


# --------------------------------------------------------------------------- checking


@dataclass
class Comparison:
    clips: int
    max_abs_diff: float
    top1_agreement: float
    top1_disagreements_beyond_tolerance: int


@dataclass
class Speed:
    """Median inference time per clip of each backend, and what it was measured with."""

    torch_ms_per_clip: float
    onnx_ms_per_clip: float
    batch: int
    threads: int
    rounds: int
    host: str
    cpu: str


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
    speed: Speed | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(
    reference: nn.Module,
    runner: Runner,
    clips: Sequence[tuple[torch.Tensor, ...]],
    spec: ModelSpec,
    atol: float,
) -> Comparison:
    worst, agree, bad = 0.0, 0, 0
    for paths in clips:
        with torch.inference_mode():
            want = reference(list(paths) if spec.alpha else paths[0]).float().reshape(1, -1)
        got = runner(*paths).float().reshape(1, -1)
        worst = max(worst, float((want - got).abs().max()))
        top2 = torch.topk(want[0], 2).values
        if int(want.argmax()) == int(got.argmax()):
            agree += 1
        elif float(top2[0] - top2[1]) > atol:
            bad += 1
    n = max(len(clips), 1)
    return Comparison(len(clips), worst, agree / n, bad)


def cpu_model() -> str:
    """This machine's CPU model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure_speed(
    reference: nn.Module, artifact: Path, spec: ModelSpec, *, threads: int, batch: int, rounds: int
) -> Speed:
    """PyTorch (the loaded module, Swish and all) against the worker's ONNX Runtime
    session on one random batch: a warm-up call each, then ``rounds`` rounds alternating
    which goes first; medians per clip."""
    from app.analysis.backends import OnnxModule

    if rounds < 1 or batch < 1 or threads < 1:
        raise ValueError("rounds, batch and threads must be at least 1")
    session = OnnxModule(artifact, input_names(spec), threads)
    clips = random_clips(spec, batch, seed=3)
    paths = [torch.cat([clip[i] for clip in clips]) for i in range(len(clips[0]))]
    arg: torch.Tensor | list[torch.Tensor] = paths if spec.alpha else paths[0]

    def run_torch() -> None:
        with torch.inference_mode():
            reference(arg)

    def run_onnx() -> None:
        session(arg)

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        run_torch()
        run_onnx()
        seconds: dict[str, list[float]] = {"torch": [], "onnx": []}
        pair = [("torch", run_torch), ("onnx", run_onnx)]
        for i in range(rounds):
            for name, fn in pair if i % 2 == 0 else pair[::-1]:
                start = time.perf_counter()
                fn()
                seconds[name].append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    return Speed(
        torch_ms_per_clip=round(1000 * statistics.median(seconds["torch"]) / batch, 3),
        onnx_ms_per_clip=round(1000 * statistics.median(seconds["onnx"]) / batch, 3),
        batch=batch,
        threads=threads,
        rounds=rounds,
        host=platform.node(),
        cpu=cpu_model(),
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


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
) -> ExportReport:
    """Export ``spec``'s weights to ``fmt`` next to them, verify, write the report. An ONNX
    export that passed is also timed (unless ``speed`` is off) with the worker's torch
    ``threads`` and ``batch`` size, ``rounds`` interleaved rounds."""
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
    timing = None
    if speed and passed and fmt is ExportFormat.ONNX:
        timing = measure_speed(reference, target, spec, threads=threads, batch=batch, rounds=rounds)
    report = ExportReport(
        model=spec.name,
        format=fmt.value,
        artifact=target.name,
        artifact_sha256=_sha256(target),
        artifact_bytes=target.stat().st_size,
        weights_sha256=loaded.sha256,
        swish_replaced=swapped,
        export_seconds=round(seconds, 3),
        atol=atol,
        random=random_cmp,
        real=real_cmp,
        passed=passed,
        versions=versions() | _extra_versions(fmt),
        speed=timing,
    )
    report_path(target).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    if not passed:
        target.unlink(missing_ok=True)
    return report


def _extra_versions(fmt: ExportFormat) -> dict[str, str]:
    if fmt is not ExportFormat.ONNX:
        return {}
    import onnx
    import onnxruntime

    return {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "opset": str(ONNX_OPSET)}
