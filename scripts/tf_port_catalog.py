"""Port every catalog family to TFLite and a TensorFlow SavedModel once, with random-init
weights, and print the outcome table that docs/MODELS.md ("TensorFlow and TFLite") records:
model, each format's verdict, the largest output difference and the top-1 agreement over
random and real clips, or the layer and op that did not convert.

    .venv/bin/python scripts/tf_port_catalog.py [MODEL ...]   # needs the tf extra
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.analysis.artifacts import ExportFormat
from app.analysis.catalog import load_catalog
from app.analysis.export_tf import TF_FORMATS, export_tf_model, remove_artifact
from app.analysis.loader import build_model
from app.errors import ExportUnconvertible
from app.settings import Settings

MODELS = [
    "x3d_xs",
    "x3d_s",
    "x3d_m",
    "efficient_x3d_xs",
    "efficient_x3d_s",
    "slow_r50",
    "c2d_r50",
    "i3d_r50",
    "r2plus1d_r50",
    "csn_r101",
    "slowfast_r50",
    "mvit_base_16x4",
]


def outcome(models: Path, name: str, fmt: ExportFormat) -> str:
    spec = load_catalog(models).get(name)
    started = time.monotonic()
    try:
        report = export_tf_model(
            models, spec, fmt, allowed_formats=Settings().allowed_format_list, clips=2, atol=1e-4
        )
    except ExportUnconvertible as exc:
        return f"no: {exc.detail}"
    worst = max(report.random.max_abs_diff, report.real.max_abs_diff)
    agree = min(report.random.top1_agreement, report.real.top1_agreement)
    verdict = "ok" if report.passed else "FAILED verification"
    return f"{verdict}, {worst:.1e}, {100 * agree:.0f}% ({time.monotonic() - started:.0f} s)"


def main(names: list[str]) -> None:
    torch.set_num_threads(1)
    print("| model | tflite | tf-savedmodel |\n|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        models = Path(scratch)
        for name in names:
            spec = load_catalog(models).get(name)
            torch.manual_seed(0)
            state = build_model(spec).state_dict()
            key = spec.checkpoint_key
            torch.save(state if key is None else {key: state}, models / spec.weights)
            cells = [outcome(models, name, fmt) for fmt in TF_FORMATS]
            print(f"| {name} | {cells[0]} | {cells[1]} |", flush=True)
            for path in models.iterdir():
                if path.name != "manifest.json":
                    remove_artifact(path)


if __name__ == "__main__":
    main(sys.argv[1:] or MODELS)
