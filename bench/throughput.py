"""Throughput: our engine against the PyTorchVideo tutorial pipeline, with the two bounds.

    make bench                                    # the full run (docs/PERFORMANCE.md)
    .venv/bin/python bench/throughput.py --quick  # 720p only, 1 repeat, no long video, no other models

For each test video (60 s of H.264 with B-frames at 640x360, 1280x720 and 1920x1080,
written by ``bench/videos.py``) it runs, alternating, ``--repeats`` times:

1. the reference: ``bench/reference.py``, the torch-hub tutorial loop (``EncodedVideo``,
   ``get_clip(t, t+2)`` per 2 s segment, the transforms, one clip at a time);
2. ours: ``python -m app analyze VIDEO --segment-seconds 2 --json`` (the whole process:
   interpreter, imports, model load, sandboxed decode child, inference);

and once per video the two bounds (``bench/bounds.py``): decode-only (PyAV, every frame,
no conversion) and inference-only (random clips of the same shape). It prints, as
Markdown, video-seconds per wall-second (medians), ours / reference, ours / min(bounds),
and the peak RSS of our process tree; then peak RSS for a 60 s and a 600 s video, the
decode child's overhead, the fast (NONREF) mode, and other models. Checkpoints are zoo
files written from a random init (the speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"
sys.path.insert(0, str(REPO))

from bench.videos import repeat_video, write_bench_video  # noqa: E402

HUB = {
    "x3d_xs": ("x3d_xs", "X3D_XS.pyth"),
    "x3d_s": ("x3d_s", "X3D_S.pyth"),
    "x3d_m": ("x3d_m", "X3D_M.pyth"),
    "slowfast_r50": ("slowfast_r50", "SLOWFAST_8x8_R50.pyth"),
    "mvit_base_16x4": ("mvit_base_16x4", "MVIT_B_16x4.pyth"),
}
SEGMENT = 2.0


def write_checkpoint(models_dir: Path, model: str) -> None:
    builder, file_name = HUB[model]
    path = models_dir / file_name
    if path.is_file():
        return
    code = (
        "import sys, torch; from pytorchvideo.models import hub; torch.manual_seed(0); "
        f"m = hub.{builder}(pretrained=False); "
        f"torch.save({{'model_state': m.state_dict()}}, {str(path)!r})"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for tid in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{tid}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return found


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Run:
    seconds: float
    peak_rss_mib: float
    stdout: str = ""


def run_process(argv: list[str], env: dict[str, str] | None = None) -> Run:
    """Wall time of the whole process, and the peak summed RSS of its process tree."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.1):
            peak = max(peak, sum(_rss_kib(p) for p in _tree(proc.pid)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{stderr[-3000:]}")
    return Run(seconds, peak / 1024, stdout)


def ours(video: Path, model: str, models_dir: Path, extra_env: dict[str, str] | None = None) -> Run:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "VAS_MODELS_DIR": str(models_dir),
        "VAS_DATA_DIR": str(OUT / "data"),
        "VAS_LOG_LEVEL": "warning",
        **(extra_env or {}),
    }
    argv = [sys.executable, "-m", "app", "analyze", str(video), "--model", model]
    return run_process([*argv, "--segment-seconds", str(SEGMENT), "--json"], env)


def reference(video: Path, model: str, models_dir: Path) -> Run:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    argv = [sys.executable, str(BENCH / "reference.py"), str(video), "--model", model]
    return run_process([*argv, "--models-dir", str(models_dir)], env)


def bound(*args: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, str(BENCH / "bounds.py"), *args], cwd=REPO, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@dataclass
class Row:
    label: str
    duration: float
    ref: list[float] = field(default_factory=list)
    ours: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    decode: list[float] = field(default_factory=list)
    infer: list[float] = field(default_factory=list)

    def rate(self, values: list[float]) -> float:
        return self.duration / statistics.median(values) if values else float("nan")

    def cells(self) -> list[str]:
        ref, ours_, dec, inf = (self.rate(v) for v in (self.ref, self.ours, self.decode, self.infer))
        slower = min(dec, inf)
        return [
            self.label,
            f"{ref:.2f}" if self.ref else "-",
            f"{ours_:.2f}",
            f"{dec:.2f}",
            f"{inf:.2f}",
            f"{ours_ / ref:.2f}x" if self.ref else "-",
            f"{100 * ours_ / slower:.0f} %",
            f"{statistics.median(self.rss):.0f} MiB" if self.rss else "-",
        ]


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0]
    return f"{os.cpu_count()} vCPUs ({cpu}), Python {platform.python_version()}, load average {load:.1f}"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


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
    header = f"Machine: {machine()}. Model {args.model}, {args.seconds:g} s videos, 2 s segments."
    report: list[str] = [header, ""]

    clips = int(args.seconds // SEGMENT)
    infer_runs = [
        bound("infer", "--model", args.model, "--models-dir", str(models_dir), "--clips", str(clips))[
            "seconds"
        ]
        for _ in range(args.repeats)
    ]
    rows: list[Row] = []
    videos: dict[tuple[int, ...], Path] = {}
    for width, height in sizes:
        video = write_bench_video(width, height, args.seconds)
        videos[(width, height)] = video
        row = Row(f"{width}x{height}", args.seconds, infer=infer_runs)
        for r in range(args.repeats):
            order = ["ref", "ours"] if r % 2 == 0 else ["ours", "ref"]
            for which in order:
                if which == "ref":
                    run = reference(video, args.model, models_dir)
                    row.ref.append(run.seconds)
                else:
                    run = ours(video, args.model, models_dir)
                    row.ours.append(run.seconds)
                    row.rss.append(run.peak_rss_mib)
                log(f"{row.label} {which}: {run.seconds:.1f} s, peak RSS {run.peak_rss_mib:.0f} MiB")
            row.decode.append(bound("decode", str(video))["seconds"])
        rows.append(row)
    head = [
        "video",
        "reference v/s",
        "ours v/s",
        "decode-only v/s",
        "inference-only v/s",
        "ours / reference",
        "ours / min(bounds)",
        "ours peak RSS",
    ]
    report += [table(head, [r.cells() for r in rows]), ""]
    report.append(
        f"v/s: video-seconds per wall-second, median of {args.repeats}; reference and ours are whole "
        "processes (start-up included), the bounds are measured inside theirs."
    )

    hd = videos.get((1280, 720)) or next(iter(videos.values()))
    if args.long_seconds:
        long_video = repeat_video(hd, round(args.long_seconds / args.seconds))
        short_rss = next((r.rss for r in rows if r.label == "1280x720"), None) or [
            ours(hd, args.model, models_dir).peak_rss_mib
        ]
        long_run = ours(long_video, args.model, models_dir)
        log(f"long: {long_run.seconds:.1f} s, peak RSS {long_run.peak_rss_mib:.0f} MiB")
        short = statistics.median(short_rss)
        report += [
            "",
            table(
                ["video (1280x720)", "ours wall", "ours v/s", "peak RSS", "vs 60 s"],
                [
                    [f"{args.seconds:g} s", "-", "-", f"{short:.0f} MiB", "1.00"],
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
    small = {
        flag: statistics.median(
            ours(tiny, args.model, models_dir, {"VAS_DECODE_IN_SUBPROCESS": flag}).seconds
            for _ in range(max(args.repeats, 1))
        )
        for flag in ("true", "false")
    }
    overhead = transfer["child_seconds"] / transfer["in_process_seconds"] - 1
    report += [
        "",
        f"Decode child ({hd.stem}, decode + prepare {transfer['clips']} clips, nothing else running): "
        f"in process {transfer['in_process_seconds']:.2f} s, in the sandboxed child through shared memory "
        f"{transfer['child_seconds']:.2f} s ({100 * overhead:+.1f} %; child start + scan "
        f"{transfer['child_start_and_scan_seconds']:.2f} s). A 2 s 320x180 video end to end: "
        f"{small['true']:.2f} s with the child, {small['false']:.2f} s without.",
    ]

    fast = ours(hd, args.model, models_dir, {"VAS_FAST_DECODE_MIN_SECONDS": "1"})
    normal = ours(hd, args.model, models_dir)
    report += ["", fast_mode_row(normal, fast, args.seconds)]

    if others:
        model_rows = []
        hd_row = next((r for r in rows if r.label == hd.stem.split("_")[0]), None)
        decode_rate = (
            hd_row.rate(hd_row.decode) if hd_row else args.seconds / bound("decode", str(hd))["seconds"]
        )
        for model in others:
            runs = [ours(hd, model, models_dir).seconds for _ in range(args.model_repeats)]
            inf = [
                bound("infer", "--model", model, "--models-dir", str(models_dir), "--clips", str(clips))[
                    "seconds"
                ]
                for _ in range(args.model_repeats)
            ]
            ours_rate = args.seconds / statistics.median(runs)
            infer_rate = args.seconds / statistics.median(inf)
            log(f"{model}: ours {ours_rate:.2f} v/s, inference-only {infer_rate:.2f} v/s")
            model_rows.append(
                [
                    model,
                    f"{ours_rate:.2f}",
                    f"{infer_rate:.2f}",
                    f"{decode_rate:.2f}",
                    f"{100 * ours_rate / min(infer_rate, decode_rate):.0f} %",
                ]
            )
        report += [
            "",
            f"Other models, {hd.stem.split('_')[0]}, {args.model_repeats} run(s) each:",
            "",
            table(
                ["model", "ours v/s", "inference-only v/s", "decode-only v/s", "ours / min(bounds)"],
                model_rows,
            ),
        ]
    report += [
        "",
        f"Total bench time {time.perf_counter() - started:.0f} s; load average at the end {os.getloadavg()[0]:.1f}.",
    ]
    text = "\n".join(report)
    (OUT / "throughput.md").write_text(text + "\n")
    print(text)


def fast_mode_row(normal: Run, fast: Run, seconds: float) -> str:
    a, b = json.loads(normal.stdout), json.loads(fast.stdout)
    agree = sum(
        x["labels"][0]["class_id"] == y["labels"][0]["class_id"]
        for x, y in zip(a["segments"], b["segments"], strict=True)
    )
    delta = max(
        abs(x["labels"][0]["score"] - y["labels"][0]["score"])
        for x, y in zip(a["segments"], b["segments"], strict=True)
    )
    moved = sum(
        x["first_frame_time"] != y["first_frame_time"] or x["last_frame_time"] != y["last_frame_time"]
        for x, y in zip(a["segments"], b["segments"], strict=True)
    )
    return table(
        [
            "decode",
            "frames decoded",
            "substituted",
            "ours v/s",
            "top-1 same",
            "max |Δ top-1 score|",
            "segments with moved frames",
        ],
        [
            [
                "normal",
                str(a["video"]["decoded_frames"]),
                "0",
                f"{seconds / normal.seconds:.2f}",
                "-",
                "-",
                "-",
            ],
            [
                "fast (NONREF)",
                str(b["video"]["decoded_frames"]),
                str(b["video"]["substituted_frames"]),
                f"{seconds / fast.seconds:.2f}",
                f"{agree}/{len(a['segments'])}",
                f"{delta:.2e}",
                f"{moved}/{len(a['segments'])}",
            ],
        ],
    )


if __name__ == "__main__":
    main()
