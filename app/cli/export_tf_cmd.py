"""``models export NAME --format tflite|tf-savedmodel`` (dispatched from ``export_cmd``):
the TensorFlow port, its verification, and the layer that did not convert when one does not."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from typing import Any

from app.errors import ServiceError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
INSTALL_HINT = "pip install -e '.[tf]'  (or: make test, which installs it)"


def cmd_export_tf(args: argparse.Namespace, settings: Any) -> int:
    missing = [m for m in ("tensorflow", "ai_edge_litert") if importlib.util.find_spec(m) is None]
    if missing:
        print(
            f"error: --format {args.format} needs the tf extra ({', '.join(missing)} not installed): "
            f"{INSTALL_HINT}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from app.analysis.artifacts import ExportFormat, artifact_path
    from app.analysis.catalog import load_catalog
    from app.analysis.export_tf import export_tf_model

    fmt = ExportFormat(args.format)
    try:
        spec = load_catalog(settings.models_dir).get(args.name)
        report = export_tf_model(
            settings.models_dir,
            spec,
            fmt,
            allowed_formats=settings.allowed_format_list,
            video=args.video,
            clips=args.clips,
            atol=args.atol,
            threads=settings.torch_threads,
        )
    except ServiceError as exc:
        print(f"error [{exc.code}]: {exc.detail}", file=sys.stderr)
        if exc.code == "export_unconvertible":
            print(f"error: {args.name} does not convert to {fmt.value}; nothing was written", file=sys.stderr)
        return EXIT_USAGE if exc.code == "unknown_model" else EXIT_FAILED
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        target = artifact_path(settings.models_dir, spec, fmt)
        print(
            f"{report.model} -> {target} ({report.artifact_bytes / 1e6:.1f} MB, {report.export_seconds:.1f}s)"
        )
        shapes = ", ".join(f"{name} {_shape(dims)}" for name, dims in report.input_shapes.items())
        print(f"  input  layout {report.input_layout} (PyTorch: NCTHW): {shapes}")
        if report.swish_replaced:
            print(f"  Swish -> nn.SiLU: {report.swish_replaced} modules")
        for name, cmp in (("random", report.random), ("real", report.real)):
            print(
                f"  {name:6} clips {cmp.clips}: max |diff| {cmp.max_abs_diff:.3g}, "
                f"top-1 agreement {100 * cmp.top1_agreement:.0f}%"
            )
    if not report.passed:
        print(
            f"error: verification failed (tolerance {report.atol:g}); the artifact was removed",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def _shape(dims: list[int | None]) -> str:
    return "(" + ", ".join("N" if d is None else str(d) for d in dims) + ")"
