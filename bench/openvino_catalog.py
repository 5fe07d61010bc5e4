"""Does every catalog model export to OpenVINO and pass verification? One run over the catalog.

Random-init weights per model (verification compares outputs, which does not need trained
weights; none can be downloaded here), written in the checkpoint layout the catalog
expects, then ``export_model(..., ExportFormat.OPENVINO)`` exactly as ``models export``
runs it: random and real clips against PyTorch, max |diff| and top-1 agreement. Prints a
Markdown table (docs/MODELS.md, "OpenVINO"); a model that fails says where.

    .venv/bin/python bench/openvino_catalog.py [--models x3d_xs slowfast_r50] [--clips 2] [--speed]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from app.analysis.artifacts import ExportFormat, cpu_model  # noqa: E402
from app.analysis.catalog import load_catalog  # noqa: E402
from app.analysis.export import export_model  # noqa: E402
from app.settings import Settings  # noqa: E402
from bench.backends import write_random_weights  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=None, help="default: the whole catalog")
    parser.add_argument("--clips", type=int, default=2, help="random and real clips compared (each)")
    parser.add_argument("--speed", action="store_true", help="also time it and measure bf16 (slow)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"CPU: {cpu_model()}; torch {torch.__version__}", flush=True)
    rows = [
        "| model | input | random max diff | real max diff | top-1 | IR MB | export s | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp)
        catalog = load_catalog(models)
        for name in args.models or catalog.names():
            spec = catalog.get(name)
            geometry = f"{spec.frames}x{spec.crop}x{spec.crop}" + (
                f", alpha {spec.alpha}" if spec.alpha else ""
            )
            started = time.monotonic()
            try:
                write_random_weights(models, spec)
                report = export_model(
                    models,
                    spec,
                    ExportFormat.OPENVINO,
                    allowed_formats=Settings().allowed_format_list,
                    clips=args.clips,
                    speed=args.speed,
                )
            except Exception as exc:  # a converter's refusal is a result too: where it failed
                where = traceback.extract_tb(exc.__traceback__)[-1]
                rows.append(
                    f"| {name} | {geometry} | - | - | - | - | {time.monotonic() - started:.0f} | "
                    f"fails: {type(exc).__name__}: {str(exc)[:160]} ({Path(where.filename).name}:{where.lineno}) |"
                )
            else:
                top1 = min(report.random.top1_agreement, report.real.top1_agreement)
                rows.append(
                    f"| {name} | {geometry} | {report.random.max_abs_diff:.2e} | {report.real.max_abs_diff:.2e} | "
                    f"{100 * top1:.0f}% | {report.artifact_bytes / 1e6:.1f} | {time.monotonic() - started:.0f} | "
                    f"{'pass' if report.passed else 'FAIL'} |"
                )
            finally:
                for leftover in models.glob(Path(spec.weights).name.split(".")[0] + "*"):
                    leftover.unlink()
            print(rows[-1], flush=True)
    print("\n".join(["", *rows]))


if __name__ == "__main__":
    main()
