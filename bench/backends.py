"""PyTorch vs ONNX Runtime on CPU for the X3D models: model-only latency per clip, and a
whole job (decode + transforms + inference) through the engine with each backend.

Random-init weights (timing does not depend on their values), exported and verified
with ``app.analysis.export`` exactly as ``models export`` does. Prints a Markdown table
(the figures in docs/PERFORMANCE.md come from this script).

    .venv/bin/python bench/backends.py [--models x3d_xs x3d_s] [--threads 1 2] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from app.analysis.artifacts import ExportFormat, artifact_path, input_names  # noqa: E402
from app.analysis.backends import OnnxModule  # noqa: E402
from app.analysis.catalog import load_catalog  # noqa: E402
from app.analysis.engine import Analyzer  # noqa: E402
from app.analysis.export import export_model  # noqa: E402
from app.analysis.loader import ModelLoader  # noqa: E402
from app.options import JobOptions  # noqa: E402
from app.settings import Settings  # noqa: E402

ALLOWED = Settings().allowed_format_list
BUILDERS = {"x3d_xs": "X3D_XS.pyth", "x3d_s": "X3D_S.pyth", "x3d_m": "X3D_M.pyth"}


def timed_pair(first, second, batch: torch.Tensor, repeats: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Median seconds per clip of each function over ``repeats`` runs, A and B interleaved
    (so background load hits both alike), after two warm-up runs of each."""
    for _ in range(2):
        first(batch)
        second(batch)
    runs: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in ((first, runs[0]), (second, runs[1])):
            start = time.perf_counter()
            fn(batch)
            out.append((time.perf_counter() - start) / batch.shape[0])
    return statistics.median(runs[0]), statistics.median(runs[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["x3d_xs", "x3d_s"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the whole-job video")
    args = parser.parse_args()

    import onnxruntime

    from tests.conftest import write_zoo_checkpoint
    from tests.media import write_video

    print(
        f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores; "
        f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}; "
        f"load average at start {os.getloadavg()[0]:.1f}"
    )
    rows = [
        "| model | threads | batch | torch ms/clip | onnxruntime ms/clip | onnx speed-up |",
        "|---|---|---|---|---|---|",
    ]
    jobs = [
        "| model | threads | video | torch job s | onnx job s | onnx speed-up |",
        "|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp)
        video = write_video(models / "bench.mp4", seconds=args.seconds, fps=30, width=640, height=360)
        for name in args.models:
            write_zoo_checkpoint(models, name, BUILDERS[name])
            spec = load_catalog(models).get(name)
            report = export_model(models, spec, ExportFormat.ONNX, allowed_formats=ALLOWED, clips=2)
            assert report.passed, report
            loaded = ModelLoader(models).load(spec)
            for threads in args.threads:
                torch.set_num_threads(threads)
                session = OnnxModule(
                    artifact_path(models, spec, ExportFormat.ONNX), input_names(spec), threads
                )
                for batch in args.batches:
                    x = torch.randn(batch, 3, spec.frames, spec.crop, spec.crop)

                    def run_torch(b: torch.Tensor, module: torch.nn.Module = loaded.module) -> None:
                        with torch.inference_mode():
                            module(b)

                    t, o = timed_pair(run_torch, session, x, args.repeats)
                    rows.append(
                        f"| {name} | {threads} | {batch} | {1000 * t:.1f} | {1000 * o:.1f} | {t / o:.2f}x |"
                    )
                    print(rows[-1], flush=True)
                analyzers = {
                    backend: Analyzer(
                        models_dir=models,
                        allowed_formats=ALLOWED,
                        torch_threads=threads,
                        batch_size=8,
                        backends={name: backend},
                        decode_in_subprocess=False,  # as the recorded figures were measured
                    )
                    for backend in ("torch", "onnx")
                }
                for analyzer in analyzers.values():
                    analyzer.analyze(video, name, JobOptions(end=2.0))  # warm: load, session
                times: dict[str, list[float]] = {"torch": [], "onnx": []}
                for _ in range(3):  # interleaved, median
                    for backend, analyzer in analyzers.items():
                        start = time.perf_counter()
                        analyzer.analyze(video, name, JobOptions())
                        times[backend].append(time.perf_counter() - start)
                seconds = {backend: statistics.median(values) for backend, values in times.items()}
                jobs.append(
                    f"| {name} | {threads} | {args.seconds:.0f} s 640x360 | {seconds['torch']:.2f} | "
                    f"{seconds['onnx']:.2f} | {seconds['torch'] / seconds['onnx']:.2f}x |"
                )
                print(jobs[-1], flush=True)
    print("\n".join(["", *rows, "", *jobs]))


if __name__ == "__main__":
    main()
