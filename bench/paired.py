"""A job without and with one option (``bench/explain.py``, ``bench/shots.py``): ours as a CLI
process on the same video, the order alternating from round to round, medians over rounds,
and one side-by-side table of the two.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.runs import OUT, Run, table, write_checkpoint
from bench.videos import write_bench_video

Figures = dict[str, float]


def order(r: int, option: str) -> tuple[str, str]:
    """Round ``r``'s order of its two runs (``plain``, ``option``): the second first on odd rounds."""
    return ("plain", option) if r % 2 == 0 else (option, "plain")


def process_figures(run: Run, prefix: str) -> Figures:
    """A CLI run's wall and CPU seconds and peak RSS, named ``{prefix} wall`` etc."""
    return {
        f"{prefix} wall": run.seconds,
        f"{prefix} cpu": run.cpu_seconds,
        f"{prefix} rss": run.peak_rss_mib,
    }


def cost_table(f: Figures, video_seconds: float, kinds: Sequence[tuple[str, str, str]], versus: str) -> str:
    """A row per ``(label, figures' prefix, ratio)`` of ``kinds``; ``versus`` heads the ratios."""
    rows = [
        [
            label,
            f"{f[p + ' wall']:.1f}",
            f"{video_seconds / f[p + ' wall']:.2f}",
            f"{f[p + ' cpu']:.1f}",
            f"{f[p + ' rss']:.0f}",
            ratio,
        ]
        for label, p, ratio in kinds
    ]
    return table(["job", "wall s", "video-s / wall-s", "CPU s", "peak RSS MiB", versus], rows)


def main(
    description: str,
    one_round: Callable[[int, Path, str, Path], Figures],
    report: Callable[[Figures, float], list[str]],
) -> None:
    """The command line of a pair's bench: ``one_round(r, video, model, models_dir)`` per
    round, then ``report`` of the medians."""
    parser = argparse.ArgumentParser(description=description)
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
    rounds = [one_round(r, video, args.model, models_dir) for r in range(args.repeats)]
    medians = {name: statistics.median(got[name] for got in rounds) for name in rounds[0]}
    head = f"{args.model}, {args.seconds:g} s {width}x{height} H.264; medians of {args.repeats} round(s)."
    print("\n".join([head, "", *report(medians, args.seconds)]))
