"""``models export NAME --format ...`` and ``models import CHECKPOINT --arch NAME``
(registered under ``models`` by ``app.cli.models_cmd``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.errors import ServiceError

if TYPE_CHECKING:
    from app.analysis.export import ExportReport
    from app.analysis.spec import ModelSpec
    from app.settings import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_subcommands(sub: Any) -> None:
    from app.analysis.artifacts import ExportFormat

    export = sub.add_parser("export", help="write a verified artifact (ONNX, OpenVINO IR, TorchScript, ...)")
    export.add_argument("name")
    export.add_argument("--format", required=True, choices=[fmt.value for fmt in ExportFormat])
    export.add_argument("--atol", type=float, default=1e-4, help="largest accepted output difference")
    export.add_argument("--clips", type=int, default=4, help="random and real clips compared (each)")
    export.add_argument(
        "--video", type=Path, default=None, help="real clips from this video (default: generated)"
    )
    export.add_argument("--json", action="store_true", help="print the verification report as JSON")
    export.add_argument(
        "--no-speed",
        dest="speed",
        action="store_false",
        help="onnx, openvino: skip timing it against PyTorch (auto then ignores it) and openvino's bf16 check",
    )
    export.add_argument(
        "--rounds", type=_positive, default=5, help="onnx, openvino: interleaved timing rounds (median taken)"
    )
    export.set_defaults(handler=cmd_export)
    imports = sub.add_parser("import", help="convert a PySlowFast checkpoint to the zoo format")
    imports.add_argument("checkpoint", type=Path)
    imports.add_argument("--arch", required=True, help="catalog model whose architecture the checkpoint has")
    imports.add_argument(
        "--out", type=Path, default=None, help="default: the model's weights file in the models dir"
    )
    imports.add_argument("--force", action="store_true", help="overwrite an existing file")
    imports.add_argument(
        "--json", action="store_true", help="print the full report (every key) as JSON on stdout"
    )
    imports.set_defaults(handler=cmd_import)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _settings() -> Any:
    from app.settings import Settings

    return Settings()


def cmd_export(args: argparse.Namespace) -> int:
    import torch

    from app.analysis.artifacts import ExportFormat, artifact_path
    from app.analysis.catalog import load_catalog
    from app.analysis.export import export_model

    settings = _settings()
    torch.set_num_threads(settings.torch_threads)
    if ExportFormat(args.format).is_tensorflow:
        from app.cli.export_tf_cmd import cmd_export_tf

        return cmd_export_tf(args, settings)
    try:
        spec = load_catalog(settings.models_dir).get(args.name)
        report = export_model(
            settings.models_dir,
            spec,
            ExportFormat(args.format),
            allowed_formats=settings.allowed_format_list,
            video=args.video,
            clips=args.clips,
            atol=args.atol,
            speed=args.speed,
            threads=settings.torch_threads,
            batch=settings.batch_size,
            rounds=args.rounds,
        )
    except ServiceError as exc:
        print(f"error [{exc.code}]: {exc.detail}", file=sys.stderr)
        return EXIT_USAGE if exc.code == "unknown_model" else EXIT_FAILED
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        target = artifact_path(settings.models_dir, spec, ExportFormat(args.format))
        print(
            f"{report.model} -> {target} ({report.artifact_bytes / 1e6:.1f} MB, {report.export_seconds:.1f}s)"
        )
        if report.swish_replaced:
            print(f"  Swish -> nn.SiLU: {report.swish_replaced} modules")
        for name, cmp in (("random", report.random), ("real", report.real)):
            print(
                f"  {name:6} clips {cmp.clips}: max |diff| {cmp.max_abs_diff:.3g}, "
                f"top-1 agreement {100 * cmp.top1_agreement:.0f}%"
            )
        for line in _speed_lines(settings, spec, report):
            print(line)
    if not report.passed:
        print(
            f"error: verification failed (tolerance {report.atol:g}); the artifact was removed",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def _speed_lines(settings: Settings, spec: ModelSpec, report: ExportReport) -> list[str]:
    """The timing, what ``auto`` now runs here (reading every export's report), and bf16."""
    from app.analysis.artifacts import cpu_model
    from app.analysis.backend_choice import auto_ranking

    sp, bf16 = report.speed, report.bf16
    if sp is None:
        return []
    faster, _ = auto_ranking(
        settings.models_dir,
        spec,
        report.weights_sha256,
        threads=settings.torch_threads,
        batch=settings.batch_size,
        cpu=cpu_model(),
    )
    lines = [
        f"  speed  (threads {sp.threads}, batch {sp.batch}, median of {sp.rounds}): "
        f"torch {sp.torch_ms_per_clip:.1f} ms/clip, {sp.backend} {sp.backend_ms_per_clip:.1f} ms/clip "
        f"-> the auto backend runs {faster[0].backend if faster else 'torch'} here"
    ]
    if bf16 is not None:
        lines.append(
            f"  bf16   {bf16.bf16_ms_per_clip:.1f} ms/clip (f32 {bf16.f32_ms_per_clip:.1f}), top-1 agrees with "
            f"f32 on {100 * bf16.top1_agreement_with_f32:.0f}% of {bf16.clips} known-answer clips; {bf16.note}"
        )
    return lines


def cmd_import(args: argparse.Namespace) -> int:
    from app.analysis.catalog import load_catalog
    from app.analysis.convert import import_checkpoint
    from app.analysis.loader import build_model
    from app.analysis.lockfile import file_sha256

    settings = _settings()
    if not args.checkpoint.is_file():
        print(f"error: {args.checkpoint} is not a file", file=sys.stderr)
        return EXIT_USAGE
    try:
        spec = load_catalog(settings.models_dir).get(args.arch)
        model = build_model(spec)
    except ServiceError as exc:
        print(f"error [{exc.code}]: {exc.detail}", file=sys.stderr)
        return EXIT_USAGE
    out = args.out or settings.models_dir / spec.weights
    if out.exists() and not args.force:
        print(f"error: {out} exists (use --force to overwrite)", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = import_checkpoint(args.checkpoint, model, out)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    sha256 = file_sha256(out) if report.ok else None
    if args.json:
        written = {"arch": spec.name, "out": str(out) if report.ok else None, "sha256": sha256}
        json.dump({**report.to_dict(), **written}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print("\n".join(report.lines()))
    if not report.ok:
        print(f"error: the checkpoint does not fit {spec.name}; nothing written", file=sys.stderr)
        return EXIT_FAILED
    if not args.json:
        print(f"wrote {out} (sha256 {sha256}); record it with `models hash {spec.name}`")
    return EXIT_OK
