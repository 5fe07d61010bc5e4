"""The CPU pipeline at its bound: x3d_s on a 60 s 720p H.264 video with B-frames, 2 s segments.

    make bench                                     # = .venv/bin/python bench/pipeline.py
    .venv/bin/python bench/pipeline.py --quick     # one round, no 600 s video

One run measures, side by side (each round rotates the order of the whole-job runs;
medians of ``--repeats`` rounds):

* the PyTorchVideo tutorial pipeline (``bench/reference.py``), a whole process;
* ours as a CLI process (``python -m app analyze``, default settings: backend ``auto``),
  without and with ``--detect-shots`` (``bench/shots.py``: the pair's order alternates by round),
  with the shot detector's frames/s from the job's provenance; and with ``--explain``
  (``bench/explain.py``), against the same round's plain run;
* ours in a warm worker (``Analyzer.analyze`` after a first job), once per backend;
* decode-only: the job's sandboxed decode child(ren) without inference, with one child
  (FFmpeg frame threads) and with two children on keyframe-aligned halves (one thread each);
* inference-only: 30 random clips of the model's input, batch 1, one thread, per backend;
* the decode child's work in CPU seconds (``bounds.py child-work``: exact-skip decode + RGB
  conversion of the sampled frames, then resize + views), one thread;
* the conversion of a sampled frame, ours (swscale RGB + numpy PyTorch bilinear) against
  swscale's one-step convert-and-resize, with the distance between them (``bounds.py resize``);

and from them the pipeline's bound for each backend: the CPU seconds it needs (the child's
work + inference) divided by the cores, against the warm worker's wall time. Then the peak
RSS of the CLI on the 600 s video against the 60 s one. ONNX and OpenVINO need their verified
exports: ``models export x3d_s --format onnx|openvino`` runs first (a backend whose export
fails is reported as unavailable). Checkpoints are random-init zoo files (speed does not
depend on the weights). The report is also written to ``bench/out/pipeline.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import explain, shots
from bench.runs import OUT, REPO, SEGMENT, bound, log, machine, ours, reference, table, write_checkpoint
from bench.videos import repeat_video, write_bench_video

BACKENDS = ("torch", "onnx", "openvino")
VARIANTS = ((1, 0), (2, 1))
"""Decode (children, threads per child) compared: one child with frame threads, two halves."""


def export(model: str, models_dir: Path, backend: str) -> str | None:
    """Write and verify ``backend``'s export (None when it passed; else why not)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "VAS_MODELS_DIR": str(models_dir),
        "VAS_LOG_LEVEL": "warning",
    }
    argv = [sys.executable, "-m", "app", "models", "export", model, "--format", backend, "--json"]
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode == 0:
        return None
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit {done.returncode}"


def warm(video: Path, model: str, models_dir: Path, backend: str, children: int = 0) -> dict[str, float]:
    tiny = write_bench_video(320, 180, 2.0)
    os.environ["VAS_BACKENDS"] = json.dumps({model: backend})
    os.environ["VAS_DECODE_CHILDREN"] = str(children)
    try:
        args = ["warm", str(video), "--model", model, "--models-dir", str(models_dir), "--warm-up", str(tiny)]
        return bound(*args)
    finally:
        del os.environ["VAS_BACKENDS"], os.environ["VAS_DECODE_CHILDREN"]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


class Figures:
    """Every measurement by name, in seconds (wall or CPU), one value per round."""

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = defaultdict(list)

    def add(self, name: str, value: float) -> None:
        self.values[name].append(value)
        log(f"{name}: {value:.2f}")

    def __getitem__(self, name: str) -> float:
        return median(self.values.get(name, []))

    def __contains__(self, name: str) -> bool:
        return bool(self.values.get(name))


def one_round(r: int, video: Path, model: str, models_dir: Path, backends: list[str], f: Figures) -> None:
    jobs = ["tutorial", "cli", *[f"warm {b}" for b in backends]]
    for job in jobs[r % len(jobs) :] + jobs[: r % len(jobs)]:
        if job == "tutorial":
            run = reference(video, model, models_dir)
            f.add("tutorial wall", run.seconds)
            f.add("tutorial cpu", run.cpu_seconds)
        elif job == "cli":
            for name, value in shots.figures(shots.pair(r, video, model, models_dir)).items():
                f.add(name, value)  # cli wall/cpu/rss (no shots), cli shots ..., shots ...
            for name, value in explain.figures(explain.explained(video, model, models_dir)).items():
                f.add(name, value)  # cli explain wall/cpu/rss, explain seconds, explain maps
        else:
            backend = job.split()[1]
            got = warm(video, model, models_dir, backend)
            f.add(f"{job} wall", got["seconds"])
            f.add(f"{job} cpu", got["cpu_seconds"])
    work = bound("child-work", str(video), "--model", model, "--models-dir", str(models_dir))
    f.add("decode cpu", work["decode_cpu_seconds"])
    f.add("child cpu", work["total_cpu_seconds"])
    f.add("child wall", work["seconds"])
    for children, threads in VARIANTS:
        args = ["--model", model, "--models-dir", str(models_dir), "--children", str(children)]
        got = bound("children", str(video), *args, "--threads", str(threads))
        f.add(f"decode-only {children}x{threads} wall", got["seconds"])
        f.add(f"decode-only {children}x{threads} cpu", got["cpu_seconds"])
    for backend in backends:
        got = bound("infer", "--model", model, "--models-dir", str(models_dir), "--backend", backend)
        f.add(f"infer {backend}", got["cpu_seconds"])
    fastest = min(backends, key=lambda b: f[f"infer {b}"])
    for children, _ in VARIANTS:
        got = warm(video, model, models_dir, fastest, children)
        f.add(f"warm {fastest} children {children} wall", got["seconds"])


def report(
    f: Figures, seconds: float, backends: list[str], unavailable: dict[str, str], cores: int
) -> list[str]:
    def rate(name: str) -> str:
        return f"{seconds / f[name]:.2f}"

    tutorial = f["tutorial wall"]
    rows = [
        [
            "PyTorchVideo tutorial (process)",
            f"{tutorial:.1f}",
            rate("tutorial wall"),
            f"{f['tutorial cpu']:.1f}",
            "1.00x",
        ]
    ]
    rows.append(
        [
            "ours, CLI process (auto)",
            f"{f['cli wall']:.1f}",
            rate("cli wall"),
            f"{f['cli cpu']:.1f}",
            f"{tutorial / f['cli wall']:.2f}x",
        ]
    )
    for b in backends:
        wall = f[f"warm {b} wall"]
        rows.append(
            [
                f"ours, warm worker ({b})",
                f"{wall:.1f}",
                rate(f"warm {b} wall"),
                f"{f[f'warm {b} cpu']:.1f}",
                f"{tutorial / wall:.2f}x",
            ]
        )
    for children, threads in VARIANTS:
        name = f"decode-only {children}x{threads}"
        label = f"decode-only: {children} child(ren), {threads or 'auto'} thread(s) each"
        rows.append([label, f"{f[name + ' wall']:.1f}", rate(name + " wall"), f"{f[name + ' cpu']:.1f}", "-"])
    for b in backends:
        rows.append(
            [
                f"inference-only ({b})",
                f"{f[f'infer {b}']:.1f}",
                rate(f"infer {b}"),
                f"{f[f'infer {b}']:.1f}",
                "-",
            ]
        )
    lines = [table(["pipeline", "wall s", "video-s / wall-s", "CPU s", "vs tutorial"], rows), ""]
    lines += [f"{b}: unavailable ({why})" for b, why in unavailable.items()]
    child, decode = f["child cpu"], f["decode cpu"]
    bound_rows = []
    for b in backends:
        need = child + f[f"infer {b}"]
        limit = need / cores
        wall = f[f"warm {b} wall"]
        parts = {
            "scan + decode + RGB": decode,
            "resize + views": child - decode,
            "inference": f[f"infer {b}"],
        }
        top = max(parts, key=lambda k: parts[k])
        bound_rows.append(
            [
                b,
                f"{decode:.1f}",
                f"{child - decode:.1f}",
                f"{f[f'infer {b}']:.1f}",
                f"{need:.1f}",
                f"{limit:.1f}",
                f"{wall:.1f}",
                f"{f[f'warm {b} cpu']:.1f}",
                f"{100 * limit / wall:.0f} %",
                f"{top} ({100 * parts[top] / need:.0f} %)",
            ]
        )
    head = [
        "backend",
        "scan + decode + RGB CPU s",
        "resize + views CPU s",
        "inference CPU s",
        "pipeline CPU s",
        f"bound s (/ {cores} cores)",
        "warm wall s",
        "warm CPU s",
        "warm at % of bound",
        "dominant part",
    ]
    lines += ["", table(head, bound_rows)]
    fastest = min(backends, key=lambda b: f[f"infer {b}"])
    split_rows = [
        [
            str(c),
            str(t or "auto"),
            f"{f[f'decode-only {c}x{t} wall']:.1f}",
            f"{f[f'decode-only {c}x{t} cpu']:.1f}",
            f"{f[f'warm {fastest} children {c} wall']:.1f}",
        ]
        for c, t in VARIANTS
    ]
    head = [
        "decode_children",
        "threads each",
        "decode-only wall s",
        "decode-only CPU s",
        f"warm worker wall s ({fastest})",
    ]
    lines += ["", table(head, split_rows)]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="x3d_s")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--long-seconds", type=float, default=600.0, help="0: skip the peak-RSS run")
    parser.add_argument("--quick", action="store_true", help="one round, no long video")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.long_seconds = 1, 0.0
    started, loads = time.perf_counter(), [os.getloadavg()[0]]
    models_dir = OUT / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    write_checkpoint(models_dir, args.model)
    width, height = (int(v) for v in args.size.split("x"))
    video = write_bench_video(width, height, args.seconds)
    unavailable = {b: why for b in BACKENDS[1:] if (why := export(args.model, models_dir, b)) is not None}
    backends = [b for b in BACKENDS if b not in unavailable]
    figures = Figures()
    for r in range(args.repeats):
        one_round(r, video, args.model, models_dir, backends, figures)
        loads.append(os.getloadavg()[0])
    cores = os.cpu_count() or 1
    lines = [
        f"Machine: {machine()}. {args.model}, {args.seconds:g} s {width}x{height} H.264 (B-frames, keyframe every 2 s), "
        f"{SEGMENT:g} s segments ({int(args.seconds // SEGMENT)} clips); medians of {args.repeats} round(s).",
        "",
        *report(figures, args.seconds, backends, unavailable, cores),
    ]
    resized = bound("resize", str(video), "--model", args.model, "--models-dir", str(models_dir))
    lines += [
        "",
        "Conversion of a sampled frame (30 frames of the video, CPU ms each), and how far each way is from "
        "ours in grey levels (0-255) before normalisation:",
        "",
        table(
            ["RGB + resize", "ms / frame", "mean |diff|", "max |diff|"],
            [
                [k, f"{v['ms_per_frame']:.2f}", f"{v['mean_grey']:.2f}", f"{v['max_grey']:.1f}"]
                for k, v in resized.items()
            ],
        ),
    ]
    if args.long_seconds:
        long_video = repeat_video(video, round(args.long_seconds / args.seconds))
        run = ours(long_video, args.model, models_dir)
        short = figures["cli rss"]
        lines += [
            "",
            table(
                ["video", "ours CLI wall s", "peak RSS MiB", "ratio"],
                [
                    [f"{args.seconds:g} s", f"{figures['cli wall']:.1f}", f"{short:.0f}", "1.00"],
                    [
                        f"{args.long_seconds:g} s",
                        f"{run.seconds:.1f}",
                        f"{run.peak_rss_mib:.0f}",
                        f"{run.peak_rss_mib / short:.2f}",
                    ],
                ],
            ),
        ]
    lines += [
        "",
        f"Shot detection: ours as a CLI process on the same {args.seconds:g} s {width}x{height} video without "
        "and with `--detect-shots` (the order alternating by round):",
        "",
        *shots.report({name: figures[name] for name in figures.values}, args.seconds),
        "",
        "Explain: ours as a CLI process on the same video with `--explain`, against the plain run above:",
        "",
        *explain.report({name: figures[name] for name in figures.values}, args.seconds),
    ]
    loads.append(os.getloadavg()[0])
    lines += [
        "",
        f"Bench time {time.perf_counter() - started:.0f} s; 1-minute load average during the run "
        f"{min(loads):.1f} to {max(loads):.1f} on {cores} CPUs (this machine is shared).",
    ]
    text = "\n".join(lines)
    (OUT / "pipeline.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
