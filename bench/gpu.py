"""The GPU worker measured: tutorial on the GPU, ours with CPU decode, and the bounds, per model.

    make bench-gpu                                  # = .venv/bin/python bench/gpu.py
    .venv/bin/python bench/gpu.py --dry-run         # CPU, tiny video, x3d_xs: the code paths only
    .venv/bin/python bench/gpu.py --models x3d_s --sizes 1920x1080 --out $OUT/gpu.md

For each model (x3d_s, x3d_m, slowfast_r50, mvit_base_16x4) and each 60 s H.264 video
(1280x720, 1920x1080; ``bench/videos.py``), one process measures side by side:

* the PyTorchVideo tutorial pipeline with the model on the GPU (``bench/reference.py
  --device``), a process of its own;
* ours, one job: ``Analyzer.analyze`` on a warm analyzer (CPU decode children, batches of
  ``--batch`` views, autocast bf16 as ``classifier.predict`` runs on CUDA);
* ours, ``--jobs`` jobs in flight: one ``Scheduler`` over that many tasks (as a
  multi-job worker runs them), batches shared across jobs;
* decode-only: the job's sandboxed decode child without inference (``bounds.children``);
* inference-only: random clips of the model's input already on the device, batches of
  ``--batch``, eager fp32, autocast bf16 (fp16 where bf16 is missing) and TensorRT
  (``torch-tensorrt`` when it imports; else "not installed"), with the peak GPU memory.

Rates are video-seconds per wall-second; "% of bound" compares ours (jobs in flight) with
the slower of decode-only and inference-only (autocast). Rows are appended to the report
as they finish (``--out``, default ``bench/out/gpu.md``), so a run cut short keeps what it
measured. Without CUDA it stops at once unless ``--device cpu`` (or ``--dry-run``) says so.
Checkpoints are random-init zoo files: speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from bench.runs import BENCH, OUT, REPO, SEGMENT, log, machine, run_process, table, write_checkpoint
from bench.videos import write_bench_video

MODELS = ("x3d_s", "x3d_m", "slowfast_r50", "mvit_base_16x4")
SIZES = ("1920x1080", "1280x720")
HEAD = ["model", "video", "pipeline", "wall s", "video-s / wall-s", "peak GPU MiB", "vs tutorial", "note"]


class Peak:
    """Peak GPU memory of a block (MiB; "-" on the CPU), timed with the device synchronised."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.device = device
        self.seconds = 0.0
        self.mib = "-"

    def __enter__(self) -> Peak:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            self.mib = f"{torch.cuda.max_memory_allocated(self.device) / 2**20:.0f}"
        self.seconds = time.perf_counter() - self._started


def require_device(device: str) -> torch.device:
    if device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(
            f"bench/gpu.py needs CUDA: torch {torch.__version__} (built for CUDA {torch.version.cuda}) "
            "sees no GPU. Run it on a GPU machine, or use --dry-run to exercise it on the CPU."
        )
    return torch.device(device)


def analyzer(models_dir: Path, device: str, batch: int) -> Any:
    from app.analysis.engine import Analyzer
    from app.settings import Settings

    return Analyzer(
        models_dir=models_dir,
        allowed_formats=Settings().allowed_format_list,
        device=device,
        batch_size=batch,
        backend_default="torch",
    )


def jobs_in_flight(engine: Any, video: Path, model: str, jobs: int) -> None:
    """``jobs`` analyses of ``video`` through one scheduler, as a multi-job worker runs them."""
    from app.options import JobOptions

    tasks = [engine.open_task(video, model, JobOptions(segment_seconds=SEGMENT)) for _ in range(jobs)]
    try:
        engine.scheduler().run(tasks)
    finally:
        for task in tasks:
            task.close()
    failed = [t.error for t in tasks if t.error is not None]
    if failed:
        raise RuntimeError(f"{len(failed)} of {jobs} jobs failed: {failed[0]!r}")


def random_views(spec: Any, count: int, device: torch.device) -> list[Any]:
    from app.analysis.clip_views import pack_pathway

    gen = torch.Generator().manual_seed(0)
    views: list[Any] = []
    for _ in range(count):
        view = torch.randn(3, spec.frames, spec.crop, spec.crop, generator=gen)
        packed = pack_pathway(view.numpy(), spec.alpha) if spec.alpha else None
        views.append([torch.from_numpy(p) for p in packed] if packed is not None else view)
    return views


def batches(views: list[Any], batch: int, device: torch.device) -> list[Any]:
    out = []
    for i in range(0, len(views), batch):
        part = views[i : i + batch]
        if isinstance(part[0], list):
            out.append([torch.stack([v[p] for v in part]).to(device) for p in range(len(part[0]))])
        else:
            out.append(torch.stack(part).to(device))
    return out


def autocast_dtype(device: torch.device) -> torch.dtype:
    """bf16; fp16 on a GPU without bf16 (what ``classifier.predict`` picks)."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def timed_inference(fn: Callable[[Any], Any], inputs: list[Any], device: torch.device) -> Peak:
    with torch.inference_mode():
        fn(inputs[0])  # warm-up: kernels chosen, allocator filled
        with Peak(device) as peak:
            for batch in inputs:
                fn(batch)
    return peak


def tensorrt(module: torch.nn.Module, example: Any, eager: Callable[[Any], Any]) -> tuple[Any, str]:
    """A TensorRT-compiled module and its distance from eager, or (None, why not)."""
    try:
        import torch_tensorrt
    except ImportError:
        return None, "not installed"
    try:
        inputs = example if isinstance(example, list) else [example]
        compiled = torch_tensorrt.compile(module, inputs=inputs, enabled_precisions={torch.float16})
        with torch.inference_mode():
            diff = (compiled(example).float() - eager(example).float()).abs().max().item()
    except Exception as exc:  # an unsupported layer, a build failure: report, measure the rest
        return None, f"failed: {str(exc).splitlines()[0][:120]}"
    return compiled, f"max |diff| vs eager {diff:.2e}"


def inference_rows(
    spec: Any, models_dir: Path, clips: int, batch: int, device: torch.device
) -> list[tuple[str, Peak | None, str]]:
    from app.analysis.loader import ModelLoader

    module = ModelLoader(models_dir, device=str(device)).load(spec).module.eval()
    inputs = batches(random_views(spec, clips, device), batch, device)

    def eager(x: Any) -> Any:
        return module(x)

    def mixed(x: Any) -> Any:
        with torch.autocast(device_type=device.type, dtype=autocast_dtype(device)):
            return module(x)

    rows: list[tuple[str, Peak | None, str]] = [
        ("inference-only, eager fp32", timed_inference(eager, inputs, device), ""),
        (
            f"inference-only, autocast {str(autocast_dtype(device)).split('.')[1]}",
            timed_inference(mixed, inputs, device),
            "",
        ),
    ]
    if device.type != "cuda":
        rows.append(("inference-only, TensorRT", None, "needs CUDA"))
        return rows
    compiled, note = tensorrt(module, inputs[0], eager)
    rows.append(
        (
            "inference-only, TensorRT fp16",
            timed_inference(compiled, inputs, device) if compiled else None,
            note,
        )
    )
    return rows


def tutorial(video: Path, model: str, models_dir: Path, device: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    argv = [sys.executable, str(BENCH / "reference.py"), str(video), "--model", model]
    run = run_process([*argv, "--models-dir", str(models_dir), "--device", device], env)
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def measure(
    model: str, video: Path, label: str, args: argparse.Namespace, emit: Callable[[list[str]], None]
) -> None:
    from app.analysis.catalog import load_catalog
    from app.options import JobOptions
    from bench.bounds import children

    device = torch.device(args.device)
    models_dir = args.models_dir
    spec = load_catalog(models_dir).get(model)
    seconds = args.seconds

    def row(name: str, wall: float | None, mib: str, note: str = "", base: float | None = None) -> None:
        rate = f"{seconds * (args.jobs if 'in flight' in name else 1) / wall:.1f}" if wall else "-"
        ratio = f"{base / wall * (args.jobs if 'in flight' in name else 1):.1f}x" if wall and base else "-"
        emit([model, label, name, f"{wall:.2f}" if wall else "-", rate, mib, ratio, note])

    ref = tutorial(video, model, models_dir, args.device)
    peak = f"{ref['peak_gpu_bytes'] / 2**20:.0f}" if "peak_gpu_bytes" in ref else "-"
    base = float(ref["loop_seconds"])
    row("PyTorchVideo tutorial", base, peak, "process; loop time", base)
    engine = analyzer(models_dir, args.device, args.batch)
    engine.analyze(args.warm_up, model, JobOptions(segment_seconds=SEGMENT))  # model loaded, kernels warm
    with Peak(device) as one:
        engine.analyze(video, model, JobOptions(segment_seconds=SEGMENT))
    row("ours, 1 job (CPU decode)", one.seconds, one.mib, f"batch {args.batch}", base)
    with Peak(device) as many:
        jobs_in_flight(engine, video, model, args.jobs)
    row(f"ours, {args.jobs} jobs in flight", many.seconds, many.mib, f"batch {args.batch}", base)
    decode = children(video, model, models_dir, 1, 0)
    row("decode-only (1 child)", decode["seconds"], "-", f"{decode['clips']} clips")
    clips = int(seconds // SEGMENT)
    slower = float(decode["seconds"])
    for name, peak_run, note in inference_rows(spec, models_dir, clips, args.batch, device):
        row(name, peak_run.seconds if peak_run else None, peak_run.mib if peak_run else "-", note)
        if peak_run and "autocast" in name:
            slower = max(slower, peak_run.seconds)
    share = 100 * slower * args.jobs / many.seconds
    emit([model, label, "ours in flight at % of the slower bound", "-", "-", "-", "-", f"{share:.0f} %"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--seconds", type=float, help="video length (60; 4 with --quick)")
    parser.add_argument("--jobs", type=int, default=4, help="jobs in flight")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--out", type=Path, default=OUT / "gpu.md")
    parser.add_argument("--quick", action="store_true", help="x3d_xs, a 4 s 320x180 video, 2 jobs")
    parser.add_argument("--dry-run", action="store_true", help="= --device cpu --quick")
    args = parser.parse_args()
    if args.dry_run:
        args.device, args.quick = "cpu", True
    if args.quick:
        args.models, args.sizes, args.jobs, args.batch = "x3d_xs", "320x180", 2, 4
    args.seconds = args.seconds or (4.0 if args.quick else 60.0)
    require_device(args.device)
    started = time.perf_counter()
    args.models_dir = OUT / "models"
    args.models_dir.mkdir(parents=True, exist_ok=True)
    args.warm_up = write_bench_video(320, 180, 2.0)
    card = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "no GPU"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        f"Card: {card}; torch {torch.__version__}; {machine()}. {args.seconds:g} s H.264 videos, "
        f"{SEGMENT:g} s segments, batch {args.batch}, {args.jobs} jobs in flight.\n\n{table(HEAD, [])}\n"
    )

    def emit(cells: list[str]) -> None:
        with args.out.open("a") as fh:
            fh.write("| " + " | ".join(cells) + " |\n")
        log(" | ".join(cells))

    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.split("x"))
        video = write_bench_video(width, height, args.seconds)
        for model in args.models.split(","):
            write_checkpoint(args.models_dir, model)
            measure(model, video, f"{height}p", args, emit)
    with args.out.open("a") as fh:
        fh.write(f"\nBench time {time.perf_counter() - started:.0f} s.\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
