"""Throughput: our engine against the PyTorchVideo tutorial pipeline, with the two bounds.

    make bench                                    # the full run (docs/PERFORMANCE.md), ~25 min here
    .venv/bin/python bench/throughput.py --quick  # 720p only, 1 repeat, no long video, no other models
    .venv/bin/python bench/throughput.py --sizes 1280x720 --repeats 3 --models ''

For each test video (60 s of H.264 with B-frames at 640x360, 1280x720 and 1920x1080,
written by ``bench/videos.py``) it runs ``--repeats`` rounds, rotating the order:

1. the reference: ``bench/reference.py``, the torch-hub tutorial loop (``EncodedVideo``,
   ``get_clip(t, t+2)`` per 2 s segment, the transforms, one clip at a time);
2. ours: ``python -m app analyze VIDEO --segment-seconds 2 --json`` (the whole process:
   interpreter, imports, model load, sandboxed decode child, inference);
3. ours warm: ``Analyzer.analyze`` in a process that already ran a job (a worker);

and each round the two bounds (``bench/bounds.py``): decode-only (PyAV, every frame, no
conversion) and inference-only (random clips of the same shape). It prints Markdown:
video-seconds per wall-second (medians), ours / reference, ours / min(bounds), the peak
RSS of our process tree; then peak RSS for a 60 s and a 600 s video, the decode child's
overhead, the fast (NONREF) mode and other models. Checkpoints are zoo files written
from a random init (speed does not depend on the weights). The table is also written
to ``bench/out/throughput.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.runs import (
    OUT,
    SEGMENT,
    Run,
    bound,
    log,
    machine,
    ours,
    reference,
    table,
    write_checkpoint,
)
from bench.videos import repeat_video, write_bench_video


def warm(video: Path, model: str, models_dir: Path) -> float:
    """Our engine in a process that already ran a job (a worker's steady state)."""
    tiny = write_bench_video(320, 180, 2.0)
    args = ["warm", str(video), "--model", model, "--models-dir", str(models_dir), "--warm-up", str(tiny)]
    seconds: float = bound(*args)["seconds"]
    return seconds


def infer_seconds(model: str, models_dir: Path, clips: int, sample: int) -> float:
    """Inference-only time for ``clips`` clips, from a run of ``sample`` of them."""
    args = ["infer", "--model", model, "--models-dir", str(models_dir), "--clips", str(sample)]
    seconds: float = bound(*args)["seconds"] * clips / sample
    return seconds


@dataclass
class Row:
    label: str
    duration: float
    ref: list[float] = field(default_factory=list)
    ours: list[float] = field(default_factory=list)
    warm: list[float] = field(default_factory=list)
    ref_cpu: list[float] = field(default_factory=list)
    ours_cpu: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    decode: list[float] = field(default_factory=list)
    infer: list[float] = field(default_factory=list)

    def rate(self, values: list[float]) -> float:
        return self.duration / statistics.median(values) if values else float("nan")

    def cells(self) -> list[str]:
        ref, ours_, warm_, dec, inf = (
            self.rate(v) for v in (self.ref, self.ours, self.warm, self.decode, self.infer)
        )
        slower = min(dec, inf)
        return [
            self.label,
            f"{ref:.2f}" if self.ref else "-",
            f"{ours_:.2f}" if self.ours else "-",
            f"{warm_:.2f}",
            f"{dec:.2f}",
            f"{inf:.2f}",
            f"{ours_ / ref:.2f}x / {warm_ / ref:.2f}x" if self.ref else "-",
            (f"{100 * ours_ / slower:.0f} % / " if self.ours else "- / ") + f"{100 * warm_ / slower:.0f} %",
            f"{statistics.median(self.rss):.0f} MiB" if self.rss else "-",
        ]


HEAD = [
    "video",
    "reference v/s",
    "ours v/s",
    "ours warm v/s",
    "decode-only v/s",
    "inference-only v/s",
    "ours / reference (CLI / warm)",
    "ours / min(bounds) (CLI / warm)",
    "ours peak RSS",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="x3d_s")
    parser.add_argument("--sizes", default="640x360,1280x720,1920x1080")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--long-seconds", type=float, default=600.0, help="0: skip the long-video RSS run")
    parser.add_argument("--models", default="x3d_xs,x3d_m,slowfast_r50,mvit_base_16x4", help="'': skip")
    parser.add_argument("--model-repeats", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="720p, 1 repeat, no long video, no other models")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.repeats, args.long_seconds, args.models = "1280x720", 1, 0.0, ""
    models_dir = OUT / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    others = [m for m in args.models.split(",") if m]
    for model in [args.model, *others]:
        write_checkpoint(models_dir, model)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",") if s]
    started = time.perf_counter()
    loads = [os.getloadavg()[0]]
    clips = int(args.seconds // SEGMENT)

    rows: list[Row] = []
    videos: dict[str, Path] = {}
    for width, height in sizes:
        video = write_bench_video(width, height, args.seconds)
        row = Row(f"{width}x{height}", args.seconds)
        videos[row.label] = video
        for r in range(args.repeats):
            order = ["ref", "ours", "warm"]
            for which in order[r % 3 :] + order[: r % 3]:
                if which == "ref":
                    ref_run = reference(video, args.model, models_dir)
                    row.ref.append(ref_run.seconds)
                    row.ref_cpu.append(ref_run.cpu_seconds)
                    log(f"{row.label} reference {row.ref[-1]:.1f} s")
                elif which == "warm":
                    row.warm.append(warm(video, args.model, models_dir))
                    log(f"{row.label} ours warm {row.warm[-1]:.1f} s")
                else:
                    run = ours(video, args.model, models_dir)
                    row.ours.append(run.seconds)
                    row.ours_cpu.append(run.cpu_seconds)
                    row.rss.append(run.peak_rss_mib)
                    log(f"{row.label} ours {run.seconds:.1f} s, peak RSS {run.peak_rss_mib:.0f} MiB")
            row.decode.append(bound("decode", str(video))["seconds"])
            row.infer.append(infer_seconds(args.model, models_dir, clips, clips))
            log(f"{row.label} bounds: decode {row.decode[-1]:.1f} s, inference {row.infer[-1]:.1f} s")
            loads.append(os.getloadavg()[0])
        rows.append(row)
    report = [
        f"Machine: {machine()}. Model {args.model}, {args.seconds:g} s videos, 2 s segments "
        f"({clips} clips), defaults (batch 1, 1 torch thread, decode in the sandboxed child).",
        "",
        table(HEAD, [r.cells() for r in rows]),
        "",
        f"v/s: video-seconds per wall-second, median of {args.repeats} (alternating). Reference and "
        "ours are whole processes (interpreter, imports, model load included); ours warm is the engine "
        "in a process that already ran a job (a worker's steady state); the bounds are measured inside "
        "their processes (decode-only: every frame, frame threads, nothing converted; inference-only: "
        "random clips, batch 1, 1 thread).",
        "",
        table(
            ["video", "reference CPU s", "ours CPU s", "reference / ours"],
            [
                [
                    r.label,
                    f"{statistics.median(r.ref_cpu):.1f}",
                    f"{statistics.median(r.ours_cpu):.1f}",
                    f"{statistics.median(r.ref_cpu) / statistics.median(r.ours_cpu):.2f}x",
                ]
                for r in rows
                if r.ref_cpu and r.ours_cpu
            ],
        ),
        "",
        "CPU s: user + system seconds of the whole process tree (what the work costs whatever the load).",
    ]

    hd = videos.get("1280x720") or next(iter(videos.values()))
    hd_label = next(label for label, path in videos.items() if path == hd)
    if args.long_seconds:
        long_video = repeat_video(hd, round(args.long_seconds / args.seconds))
        hd_row = next(r for r in rows if r.label == hd_label)
        short = statistics.median(hd_row.rss)
        long_run = ours(long_video, args.model, models_dir)
        log(f"long video: {long_run.seconds:.1f} s, peak RSS {long_run.peak_rss_mib:.0f} MiB")
        report += [
            "",
            table(
                [f"video ({hd_label})", "ours wall", "ours v/s", "peak RSS", "ratio"],
                [
                    [
                        f"{args.seconds:g} s",
                        f"{statistics.median(hd_row.ours):.1f} s",
                        f"{hd_row.rate(hd_row.ours):.2f}",
                        f"{short:.0f} MiB",
                        "1.00",
                    ],
                    [
                        f"{args.long_seconds:g} s",
                        f"{long_run.seconds:.1f} s",
                        f"{args.long_seconds / long_run.seconds:.2f}",
                        f"{long_run.peak_rss_mib:.0f} MiB",
                        f"{long_run.peak_rss_mib / short:.2f}",
                    ],
                ],
            ),
        ]

    transfer = bound("transfer", str(hd), "--model", args.model, "--models-dir", str(models_dir))
    tiny = write_bench_video(320, 180, 2.0)
    small: dict[str, list[float]] = {"true": [], "false": []}
    for _ in range(2):
        for flag in small:
            small[flag].append(ours(tiny, args.model, models_dir, {"VAS_DECODE_IN_SUBPROCESS": flag}).seconds)
    overhead = transfer["child_seconds"] / transfer["in_process_seconds"] - 1
    report += [
        "",
        f"Decode child ({hd_label}, scan + decode + prepare {transfer['clips']} clips, no inference): "
        f"in process {transfer['in_process_seconds']:.2f} s, in the sandboxed child through shared memory "
        f"{transfer['child_seconds']:.2f} s ({100 * overhead:+.1f} %; child start + scan "
        f"{transfer['child_start_and_scan_seconds']:.2f} s). A 2 s 320x180 video end to end: "
        f"{statistics.median(small['true']):.2f} s with the child, "
        f"{statistics.median(small['false']):.2f} s in process.",
    ]

    normal, fast = [], []
    for _ in range(2):
        normal.append(ours(hd, args.model, models_dir))
        fast.append(ours(hd, args.model, models_dir, {"VAS_FAST_DECODE_MIN_SECONDS": "1"}))
    report += ["", fast_mode_table(normal, fast, args.seconds)]

    if others:
        model_rows = []
        hd_row = next(r for r in rows if r.label == hd_label)
        decode_rate = hd_row.rate(hd_row.decode)
        for model in others:
            warm_runs = [warm(hd, model, models_dir) for _ in range(args.model_repeats)]
            inf = [infer_seconds(model, models_dir, clips, min(clips, 10)) for _ in range(args.model_repeats)]
            warm_rate = args.seconds / statistics.median(warm_runs)
            infer_rate = args.seconds / statistics.median(inf)
            slower = min(infer_rate, decode_rate)
            log(f"{model}: ours warm {warm_rate:.2f} v/s, inference-only {infer_rate:.2f}")
            model_rows.append(
                [
                    model,
                    f"{warm_rate:.2f}",
                    f"{infer_rate:.2f}",
                    f"{decode_rate:.2f}",
                    f"{100 * warm_rate / slower:.0f} %",
                ]
            )
            loads.append(os.getloadavg()[0])
        report += [
            "",
            f"Other models, {hd_label}, {args.model_repeats} run(s) each (inference-only from 10 clips):",
            "",
            table(
                [
                    "model",
                    "ours warm v/s",
                    "inference-only v/s",
                    "decode-only v/s",
                    "ours warm / min(bounds)",
                ],
                model_rows,
            ),
        ]
    loads.append(os.getloadavg()[0])
    report += [
        "",
        f"Bench time {time.perf_counter() - started:.0f} s; 1-minute load average sampled during the run: "
        f"{min(loads):.1f} to {max(loads):.1f} (this machine is shared).",
    ]
    text = "\n".join(report)
    (OUT / "throughput.md").write_text(text + "\n")
    print(text)


def fast_mode_table(normal: list[Run], fast: list[Run], seconds: float) -> str:
    a, b = json.loads(normal[0].stdout), json.loads(fast[0].stdout)
    pairs = list(zip(a["segments"], b["segments"], strict=True))
    agree = sum(x["labels"][0]["class_id"] == y["labels"][0]["class_id"] for x, y in pairs)
    delta = max(abs(x["labels"][0]["score"] - y["labels"][0]["score"]) for x, y in pairs)
    moved = sum(
        x["first_frame_time"] != y["first_frame_time"] or x["last_frame_time"] != y["last_frame_time"]
        for x, y in pairs
    )
    rate_normal = seconds / statistics.median(r.seconds for r in normal)
    rate_fast = seconds / statistics.median(r.seconds for r in fast)
    head = [
        "decode",
        "frames decoded",
        "substituted",
        "ours v/s",
        "speed-up",
        "top-1 same",
        "max abs diff top-1 score",
        "segments whose frames moved",
    ]
    return table(
        head,
        [
            [
                "exact (default)",
                str(a["video"]["decoded_frames"]),
                "0",
                f"{rate_normal:.2f}",
                "1.00x",
                "-",
                "-",
                "-",
            ],
            [
                "fast (NONREF)",
                str(b["video"]["decoded_frames"]),
                str(b["video"]["substituted_frames"]),
                f"{rate_fast:.2f}",
                f"{rate_fast / rate_normal:.2f}x",
                f"{agree}/{len(pairs)}",
                f"{delta:.2e}",
                f"{moved}/{len(pairs)}",
            ],
        ],
    )


if __name__ == "__main__":
    main()
