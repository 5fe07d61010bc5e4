"""PyTorch vs ONNX Runtime vs OpenVINO on CPU: model-only latency per clip, and a whole job
(decode + transforms + inference) through the engine with each backend.

Random-init weights (timing does not depend on their values), exported and verified with
``app.analysis.export`` exactly as ``models export`` does. Each backend runs as the worker
runs it (``export_modules.OnnxModule``, ``export_modules.OpenVinoModule`` at f32; bf16 beside it where
the CPU has native bf16, since elsewhere OpenVINO compiles bf16 as f32). All backends are
interleaved, medians taken. Prints Markdown tables (docs/PERFORMANCE.md comes from this).

    .venv/bin/python bench/backends.py [--models x3d_xs x3d_s] [--threads 1 2] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from app.analysis.artifacts import ExportFormat, artifact_path, cpu_model, input_names  # noqa: E402
from app.analysis.catalog import load_catalog  # noqa: E402
from app.analysis.engine import Analyzer  # noqa: E402
from app.analysis.export import export_model  # noqa: E402
from app.analysis.export_modules import OnnxModule, OpenVinoModule  # noqa: E402
from app.analysis.export_speed import time_interleaved  # noqa: E402
from app.analysis.loader import ModelLoader, build_model  # noqa: E402
from app.analysis.openvino_runtime import CompiledIR, Precision, cache_dir_for, cpu_capabilities  # noqa: E402
from app.analysis.spec import ModelSpec  # noqa: E402
from app.options import JobOptions  # noqa: E402
from app.settings import Settings  # noqa: E402

ALLOWED = Settings().allowed_format_list
BACKENDS = ("torch", "onnx", "openvino")


def write_random_weights(models: Path, spec: ModelSpec, seed: int = 0) -> None:
    """A random init of ``spec``'s network saved as its catalog entry expects the file."""
    torch.manual_seed(seed)
    state = build_model(spec).state_dict()
    torch.save({spec.checkpoint_key: state} if spec.checkpoint_key else state, models / spec.weights)


def modules_for(models: Path, spec: ModelSpec, threads: int, bf16: bool) -> dict[str, torch.nn.Module]:
    loaded = ModelLoader(models).load(spec)
    xml = artifact_path(models, spec, ExportFormat.OPENVINO)
    cache = cache_dir_for(models)
    out = {
        "torch": loaded.module,
        "onnx": OnnxModule(artifact_path(models, spec, ExportFormat.ONNX), input_names(spec), threads),
        "openvino": OpenVinoModule(
            CompiledIR(xml, threads=threads, precision=Precision.F32, cache_dir=cache)
        ),
    }
    if bf16:
        out["openvino-bf16"] = OpenVinoModule(
            CompiledIR(xml, threads=threads, precision=Precision.BF16, cache_dir=cache)
        )
    return out


def per_clip(
    modules: dict[str, torch.nn.Module], spec: ModelSpec, batch: int, repeats: int
) -> dict[str, float]:
    """Median seconds per clip of each module, interleaved, after a warm-up call each."""
    fast = torch.randn(batch, 3, spec.frames, spec.crop, spec.crop)
    arg: torch.Tensor | list[torch.Tensor] = fast
    if spec.alpha:
        arg = [fast[:, :, :: spec.alpha].contiguous(), fast]

    def call(module: torch.nn.Module) -> Callable[[], object]:
        def run() -> object:
            with torch.inference_mode():
                return module(arg)

        return run

    medians = time_interleaved({name: call(m) for name, m in modules.items()}, repeats)
    return {name: value / batch for name, value in medians.items()}


def whole_jobs(models: Path, name: str, threads: int, video: Path) -> dict[str, float]:
    analyzers = {
        backend: Analyzer(
            models_dir=models,
            allowed_formats=ALLOWED,
            torch_threads=threads,
            batch_size=8,
            backends={name: backend},
            decode_in_subprocess=False,  # as the recorded figures were measured
        )
        for backend in BACKENDS
    }
    for analyzer in analyzers.values():
        analyzer.analyze(video, name, JobOptions(end=2.0))  # warm: load, session, compile
    times: dict[str, list[float]] = {backend: [] for backend in BACKENDS}
    for _ in range(3):  # interleaved, median
        for backend, analyzer in analyzers.items():
            start = time.perf_counter()
            analyzer.analyze(video, name, JobOptions())
            times[backend].append(time.perf_counter() - start)
    return {backend: statistics.median(values) for backend, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["x3d_xs", "x3d_s"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the whole-job video")
    parser.add_argument("--no-jobs", dest="jobs", action="store_false", help="model-only timings")
    args = parser.parse_args()

    import onnxruntime
    import openvino

    from tests.media import write_video

    bf16 = "BF16" in cpu_capabilities()
    print(
        f"CPU: {cpu_model()}, {os.cpu_count()} logical cores, OpenVINO capabilities "
        f"{', '.join(cpu_capabilities())}{'' if bf16 else ' (no native bf16: bf16 would run as f32)'}; "
        f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, openvino {openvino.__version__}; "
        f"load average at start {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    names = ["torch", "onnx", "openvino", *(["openvino-bf16"] if bf16 else [])]
    rows = [
        "| model | threads | batch | "
        + " | ".join(f"{n} ms/clip" for n in names)
        + " | onnx | openvino |"
        + (" openvino bf16 |" if bf16 else ""),
        "|---|---|---|" + "---|" * (2 * len(names) - 1),
    ]
    jobs = [
        "| model | threads | video | torch job s | onnx job s | openvino job s | onnx | openvino |",
        "|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp)
        video = write_video(models / "bench.mp4", seconds=args.seconds, fps=30, width=640, height=360)
        for name in args.models:
            spec = load_catalog(models).get(name)
            write_random_weights(models, spec)
            for fmt in (ExportFormat.ONNX, ExportFormat.OPENVINO):
                report = export_model(models, spec, fmt, allowed_formats=ALLOWED, clips=2, speed=False)
                assert report.passed, report
            for threads in args.threads:
                torch.set_num_threads(threads)
                modules = modules_for(models, spec, threads, bf16)
                for batch in args.batches:
                    ms = per_clip(modules, spec, batch, args.repeats)
                    ratios = " | ".join(f"{ms['torch'] / ms[n]:.2f}x" for n in names[1:])
                    figures = " | ".join(f"{1000 * ms[n]:.1f}" for n in names)
                    rows.append(f"| {name} | {threads} | {batch} | {figures} | {ratios} |")
                    print(rows[-1], flush=True)
                if args.jobs:
                    s = whole_jobs(models, name, threads, video)
                    jobs.append(
                        f"| {name} | {threads} | {args.seconds:.0f} s 640x360 | {s['torch']:.2f} | {s['onnx']:.2f} | "
                        f"{s['openvino']:.2f} | {s['torch'] / s['onnx']:.2f}x | {s['torch'] / s['openvino']:.2f}x |"
                    )
                    print(jobs[-1], flush=True)
    print("\n".join(["", *rows, *(["", *jobs] if args.jobs else [])]))


if __name__ == "__main__":
    main()
