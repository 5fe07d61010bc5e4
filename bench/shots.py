"""What shot detection costs a job: ours as a CLI process on the same video without and with
``--detect-shots``, the order alternating from round to round (medians over rounds), and the
detector's own rate from the job's provenance (``timings.shots_seconds``: time in its network,
which overlaps decoding and the clip model, over the frames it read).

``bench/pipeline.py`` runs one pair per round (its plain CLI run is the pair's "without") and
prints ``report``. On its own, for a quick look at a small video::

    .venv/bin/python bench/shots.py --size 320x180 --seconds 6 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.runs import OUT, Run, log, ours, table, write_checkpoint
from bench.videos import write_bench_video

FIELDS = ("wall", "cpu", "rss")


def pair(r: int, video: Path, model: str, models_dir: Path) -> dict[str, Run]:
    """One run without shots and one with, the second first on odd rounds."""
    runs: dict[str, Run] = {}
    for kind in ("plain", "shots") if r % 2 == 0 else ("shots", "plain"):
        args = ["--detect-shots"] if kind == "shots" else []
        runs[kind] = ours(video, model, models_dir, extra_args=args)
        log(f"ours CLI, {'with' if kind == 'shots' else 'without'} shots: {runs[kind].seconds:.2f} s")
    return runs


def shot_figures(run: Run) -> dict[str, float]:
    """From a ``--detect-shots`` run's JSON: the detector's network seconds, the frames it
    read (every decoded frame) and the shots it found."""
    results = json.loads(run.stdout)
    seconds = float(results["provenance"]["timings"]["shots_seconds"])
    frames = float(results["video"]["decoded_frames"])
    return {"shots seconds": seconds, "shots frames": frames, "shots found": float(len(results["shots"]))}


def figures(runs: dict[str, Run]) -> dict[str, float]:
    """A pair's measurements by name (``cli ...`` without shots, ``cli shots ...`` with)."""
    out: dict[str, float] = {}
    for kind, prefix in (("plain", "cli"), ("shots", "cli shots")):
        run = runs[kind]
        out |= {
            f"{prefix} wall": run.seconds,
            f"{prefix} cpu": run.cpu_seconds,
            f"{prefix} rss": run.peak_rss_mib,
        }
    return out | shot_figures(runs["shots"])


def report(f: dict[str, float], video_seconds: float) -> list[str]:
    """The side-by-side table and the closing note on the ratio; ``f``: medians by name."""
    plain, shots = f["cli wall"], f["cli shots wall"]
    rows = [
        [
            label,
            f"{f[p + ' wall']:.1f}",
            f"{video_seconds / f[p + ' wall']:.2f}",
            f"{f[p + ' cpu']:.1f}",
            f"{f[p + ' rss']:.0f}",
            ratio,
        ]
        for label, p, ratio in (
            ("ours, CLI process", "cli", "1.00x"),
            ("ours, CLI process, --detect-shots", "cli shots", f"{shots / plain:.2f}x"),
        )
    ]
    rate = f["shots frames"] / f["shots seconds"] if f["shots seconds"] > 0 else float("nan")
    return [
        table(["job", "wall s", "video-s / wall-s", "CPU s", "peak RSS MiB", "vs without shots"], rows),
        "",
        f"Shot detection makes the job take {shots / plain:.2f}x its wall time ({shots - plain:+.1f} s) "
        f"and {f['cli shots cpu'] / f['cli cpu']:.2f}x its CPU time; the detector read "
        f"{f['shots frames']:.0f} frames at {rate:.1f} frames/s in its network "
        f"({f['shots seconds']:.1f} s, overlapped with decoding and the clip model) and found "
        f"{f['shots found']:.0f} shot(s).",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="x3d_s")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    models_dir = OUT / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    write_checkpoint(models_dir, args.model)
    width, height = (int(v) for v in args.size.split("x"))
    video = write_bench_video(width, height, args.seconds)
    rounds = [figures(pair(r, video, args.model, models_dir)) for r in range(args.repeats)]
    medians = {name: statistics.median(got[name] for got in rounds) for name in rounds[0]}
    head = f"{args.model}, {args.seconds:g} s {width}x{height} H.264; medians of {args.repeats} round(s)."
    print("\n".join([head, "", *report(medians, args.seconds)]))


if __name__ == "__main__":
    main()
