"""``analyze VIDEO``: run the engine on one file without the server (table, JSON or CSV)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pydantic import ValidationError

from app.errors import InvalidOptions, ServiceError

if TYPE_CHECKING:
    from app.analysis.decode_sandbox import DecodeSandbox
    from app.analysis.early_decode import EarlyDecode
    from app.analysis.openvino_runtime import EarlyCompile
    from app.analysis.results import AnalysisResult, Label
    from app.options import JobOptions
    from app.settings import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_OPTION_FLAGS = (
    "segment_seconds",
    "stride_seconds",
    "segments",
    "clips_per_segment",
    "crops",
    "start",
    "end",
    "top_k",
    "min_score",
    "detect_shots",
    "explain",
    "segmentation",
    "max_segment_seconds",
    "keyframe_seconds",
    "person_min_score",
    "boxes",
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "analyze", help="classify the actions in one video file (no server needed)"
    )
    parser.add_argument("video", type=Path, help="path of the video file")
    parser.add_argument("--model", default=None, help="catalog model name (default: VAS_DEFAULT_MODEL)")
    parser.add_argument(
        "--segment-seconds", type=float, default=None, help="segment length (default: the model's)"
    )
    parser.add_argument(
        "--stride-seconds", type=float, default=None, help="segment step (default: segment length)"
    )
    parser.add_argument(
        "--clips-per-segment", type=int, default=None, help="clips averaged per segment (1..10)"
    )
    parser.add_argument("--crops", type=int, choices=(1, 3), default=None, help="spatial crops per clip")
    parser.add_argument(
        "--segments",
        type=ranges_arg,
        default=None,
        metavar="START:END,...",
        help="analyse these time ranges, one segment each (e.g. 0:4,10:12.5); not with --segment-seconds",
    )
    parser.add_argument("--start", type=float, default=None, help="first second to analyse")
    parser.add_argument("--end", type=float, default=None, help="last second to analyse")
    parser.add_argument("--top-k", type=int, default=None, help="labels per segment (1..50)")
    parser.add_argument("--min-score", type=float, default=None, help="drop labels scoring below this")
    parser.add_argument(
        "--segmentation",
        choices=("fixed", "shots"),
        default=None,
        help="fixed windows (default) or one segment per shot (shots found by TransNetV2)",
    )
    parser.add_argument(
        "--max-segment-seconds",
        type=float,
        default=None,
        help="with --segmentation shots: split longer shots into equal parts (default 10)",
    )
    parser.add_argument(
        "--detect-shots",
        action="store_const",
        const=True,
        default=None,
        help="also find the video's shots (TransNetV2, in the same decode pass)",
    )
    parser.add_argument(
        "--explain",
        action="store_const",
        const=True,
        default=None,
        help="also explain each segment's top label (HiResCAM heatmaps in the JSON results)",
    )
    parser.add_argument(
        "--explain-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="with --explain: write one PNG per explained label (frame, heatmap, frame weights) here",
    )
    parser.add_argument(
        "--keyframe-seconds", type=float, default=None, help="detection models: one keyframe every N s"
    )
    parser.add_argument(
        "--person-min-score",
        type=float,
        default=None,
        help="detection models: the person detector's threshold",
    )
    parser.add_argument(
        "--boxes",
        type=json.loads,
        default=None,
        help='detection models: people as JSON [{"time": t, "boxes": [[x1, y1, x2, y2], ...]}] (0..1, as shown)',
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the full JSON results")
    output.add_argument("--csv", action="store_true", help="print one CSV row per segment label")
    parser.set_defaults(handler=run)


def ranges_arg(text: str) -> list[list[float]]:
    """argparse type of ``--segments``: ``0:4,10:12.5`` as ``[[0, 4], [10, 12.5]]``."""
    from app.options import parse_ranges

    try:
        return parse_ranges(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def run(args: argparse.Namespace) -> int:
    from app.options import JobOptions
    from app.settings import Settings

    values = {name: getattr(args, name) for name in _OPTION_FLAGS if getattr(args, name) is not None}
    try:
        options = JobOptions(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"--{'.'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}" for e in exc.errors()
        )
        print(f"error [invalid_options]: {problems}", file=sys.stderr)
        return EXIT_USAGE
    if not args.video.is_file():
        print(f"error: {args.video} is not a file", file=sys.stderr)
        return EXIT_USAGE
    if args.explain_dir is not None and not options.explain:
        print("error [invalid_options]: --explain-dir needs --explain", file=sys.stderr)
        return EXIT_USAGE
    settings = Settings()
    model = args.model or settings.default_model
    early = _start_decoder(settings, args.video, model, options)  # before torch is imported
    compiling = _start_compile(settings, model)  # OpenVINO compiles while torch imports
    if compiling is not None:  # before the early plan, which then needs no torch for any window
        from app.analysis.frame_choice import learn_from_export

        learn_from_export(compiling.key[0])
    planned = _start_early_decode(settings, args.video, model, options, early)  # ... and decodes
    from app.analysis.engine import Analyzer
    from app.cli.progress import ProgressBar

    bar = ProgressBar(f"{args.video.name} ({model})")
    try:
        analyzer = Analyzer.from_settings(settings, import_torch=_needs_torch(options, compiling))
        if planned is not None:
            analyzer.adopt_early(planned)
        elif early is not None:
            analyzer.adopt(early)
        if compiling is not None:
            analyzer.backends.adopt(compiling)
        result = analyzer.analyze(args.video, model, options, bar.update)
    except ServiceError as exc:
        bar.close()
        print(f"error [{exc.code}]: {exc.detail}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, InvalidOptions) else EXIT_FAILED
    finally:
        if planned is not None:
            planned.close()
        if early is not None:
            early.close()
        if compiling is not None:
            compiling.wait()
    bar.close()
    if args.explain_dir is not None and result.explanations:
        from app.analysis.explain_png import write_pngs

        write_pngs(args.video, result.explanations, args.explain_dir)
    if args.json:
        json.dump(result.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif result.task == "detection":  # people per keyframe: CSV rows, or cues as the table
        from app.api.detection_formats import render_detection

        sys.stdout.write(render_detection("csv" if args.csv else "vtt", result.to_dict()))
    elif args.csv:
        write_csv(result, sys.stdout)
    else:
        sys.stdout.write(format_table(result))
    return EXIT_OK


def _start_decoder(settings: Settings, video: Path, model: str, options: JobOptions) -> DecodeSandbox | None:
    """The sandboxed decoder, started while torch imports and the model loads (the engine
    adopts it). None when decoding in process, or on an error the engine will report."""
    if not settings.decode_in_subprocess:
        return None
    from app.analysis.catalog import load_catalog
    from app.analysis.decode_sandbox import DecodeSandbox, SandboxLimits
    from app.analysis.limits import MediaLimits
    from app.analysis.prep import FramePrep

    try:
        spec = load_catalog(settings.models_dir).get(model)
        if spec.task in ("detection", "person_detector"):  # its decoder needs the scan first
            return None
        return DecodeSandbox(
            video,
            settings.allowed_format_list,
            MediaLimits.from_settings(settings),
            FramePrep.for_spec(spec, options.crops),
            spec.frames,
            threads=settings.decode_threads,
            limits=SandboxLimits.from_settings(settings),
        )
    except ServiceError:
        return None


def _start_early_decode(
    settings: Settings,
    video: Path,
    model: str,
    options: JobOptions,
    early: DecodeSandbox | None,
) -> EarlyDecode | None:
    """The job planned from the first child's scan and the other children started on their
    parts, on a thread, while torch imports (``early_decode``); not for shots (one decoder)."""
    if early is None or options.finds_shots:
        return None
    from app.analysis.catalog import load_catalog
    from app.analysis.early_decode import EarlyDecode
    from app.analysis.limits import MediaLimits

    try:
        spec = load_catalog(settings.models_dir).get(model)
    except ServiceError:
        return None
    return EarlyDecode(early, video, spec, options, settings, MediaLimits.from_settings(settings))


def _needs_torch(options: JobOptions, compiling: EarlyCompile | None) -> bool:
    """Whether this run will need torch: not when the model will run on its OpenVINO export
    and nothing else asks for torch (explanations, shots); the engine imports it anyway, and
    sets its threads, if a torch module is built after all (``Analyzer(import_torch=False)``)."""
    return compiling is None or bool(options.explain) or options.finds_shots


def _start_compile(settings: Settings, model: str) -> EarlyCompile | None:
    """The OpenVINO compile of the IR this model will most likely run on (explicitly or by
    ``auto``), started in a thread before torch is imported; the backends adopt it. None
    when it will not run on OpenVINO, or on an error the engine will report."""
    if settings.device != "cpu":
        return None
    from app.analysis.artifacts import cpu_model
    from app.analysis.backend_choice import Backend, likely_openvino, setting_for
    from app.analysis.catalog import load_catalog
    from app.analysis.openvino_runtime import EarlyCompile, Precision, cache_dir_for

    try:
        spec = load_catalog(settings.models_dir).get(model)
        value, _ = setting_for(model, settings.backends, settings.backend_default)
        threads, batch = settings.torch_threads, settings.batch_size
        xml = likely_openvino(settings.models_dir, spec, value, threads=threads, batch=batch, cpu=cpu_model())
    except ServiceError:
        return None
    if xml is None:
        return None
    precision = Precision.BF16 if value is Backend.OPENVINO_BF16 else Precision.F32
    return EarlyCompile(
        xml, threads=threads, precision=precision, cache_dir=cache_dir_for(settings.models_dir)
    )


def write_csv(result: AnalysisResult, out: TextIO) -> None:
    """One row per (segment, label); a segment with no label above min_score gets one empty row."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "segment",
            "start",
            "end",
            "first_frame_time",
            "last_frame_time",
            "rank",
            "label",
            "class_id",
            "score",
        ]
    )
    for seg in result.segments:
        head = [seg.index, f"{seg.start:.3f}", f"{seg.end:.3f}"]
        head += [f"{seg.first_frame_time:.3f}", f"{seg.last_frame_time:.3f}"]
        if not seg.labels:
            writer.writerow([*head, "", "", "", ""])
        for rank, label in enumerate(seg.labels, start=1):
            writer.writerow([*head, rank, label.label, label.class_id, f"{label.score:.6f}"])


def format_table(result: AnalysisResult) -> str:
    video, segments = result.video, result.segments
    fps = f" @ {video.fps:.2f} fps" if video.fps else ""
    lines = [
        f"model {result.model} ({result.labelset}); video {video.duration:.2f} s, "
        f"{video.width}x{video.height}{fps}; {len(segments)} segments",
        "",
        f"{'start':>8} - {'end':<8}  {'top-1':<32} {'score':>6}  next",
    ]
    for seg in segments:
        top_label, top_score = (
            (seg.labels[0].label, seg.labels[0].score) if seg.labels else ("-", float("nan"))
        )
        others = seg.labels[1:] if result.task == "multilabel" else seg.labels[1:4]
        rest = ", ".join(f"{x.label} {x.score:.3f}" for x in others)
        lines.append(f"{seg.start:8.2f} - {seg.end:<8.2f}  {top_label[:32]:<32} {top_score:6.3f}  {rest}")
    if result.summary:
        lines += ["", "summary: " + ", ".join(_summary_item(x) for x in result.summary)]
    return "\n".join(lines) + "\n"


def _summary_item(label: Label) -> str:
    """``walking 0.812``; multi-label: ``walking max 0.912, 40% of the time``."""
    if label.share is None:
        return f"{label.label} {label.score:.3f}"
    return f"{label.label} max {label.score:.3f}, {100 * label.share:.0f}% of the time"
