"""What ``explain`` costs a job: ours as a CLI process on the same video without and with
``--explain`` (a forward and a backward pass per segment's explained clip, on the PyTorch
model), the order alternating from round to round (medians over rounds), and the explainer's
own time from the job's provenance (``timings.explain_seconds``).

``bench/pipeline.py`` runs the ``--explain`` run once per round beside its plain CLI run and
prints ``report``. On its own, for a quick look at a small video::

    .venv/bin/python bench/explain.py --size 320x180 --seconds 10 --repeats 1
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


def explained(video: Path, model: str, models_dir: Path) -> Run:
    """One CLI run with ``--explain``."""
    run = ours(video, model, models_dir, extra_args=["--explain"])
    log(f"ours CLI, with --explain: {run.seconds:.2f} s")
    return run


def plain(video: Path, model: str, models_dir: Path) -> Run:
    """One CLI run without it."""
    run = ours(video, model, models_dir)
    log(f"ours CLI, without --explain: {run.seconds:.2f} s")
    return run


def figures(run: Run) -> dict[str, float]:
    """An ``--explain`` run's measurements: the process (``cli explain ...``), the explainer's
    own seconds and how many maps it made."""
    results = json.loads(run.stdout)
    return {
        "cli explain wall": run.seconds,
        "cli explain cpu": run.cpu_seconds,
        "cli explain rss": run.peak_rss_mib,
        "explain seconds": float(results["provenance"]["timings"].get("explain_seconds", 0.0)),
        "explain maps": float(len(results.get("explanations") or [])),
    }


def pair(r: int, video: Path, model: str, models_dir: Path) -> dict[str, float]:
    """One run without and one with ``--explain``, the second first on odd rounds."""
    out: dict[str, float] = {}
    for kind in ("plain", "explain") if r % 2 == 0 else ("explain", "plain"):
        if kind == "explain":
            out |= figures(explained(video, model, models_dir))
        else:
            run = plain(video, model, models_dir)
            out |= {"cli wall": run.seconds, "cli cpu": run.cpu_seconds, "cli rss": run.peak_rss_mib}
    return out


def _row(f: dict[str, float], label: str, p: str, ratio: str, video_seconds: float) -> list[str]:
    wall = f[p + " wall"]
    return [
        label,
        f"{wall:.1f}",
        f"{video_seconds / wall:.2f}",
        f"{f[p + ' cpu']:.1f}",
        f"{f[p + ' rss']:.0f}",
        ratio,
    ]


def report(f: dict[str, float], video_seconds: float) -> list[str]:
    """The side-by-side table and the closing note on the ratio; ``f``: medians by name
    (``cli wall/cpu/rss`` without, ``cli explain ...`` with)."""
    plain_wall, wall = f["cli wall"], f["cli explain wall"]
    kinds = (
        ("ours, CLI process", "cli", "1.00x"),
        ("ours, CLI process, --explain", "cli explain", f"{wall / plain_wall:.2f}x"),
    )
    rows = [_row(f, label, p, ratio, video_seconds) for label, p, ratio in kinds]
    return [
        table(["job", "wall s", "video-s / wall-s", "CPU s", "peak RSS MiB", "vs without explain"], rows),
        "",
        f"Explaining makes the job take {wall / plain_wall:.2f}x its wall time ({wall - plain_wall:+.1f} s) "
        f"and {f['cli explain cpu'] / f['cli cpu']:.2f}x its CPU time; the explainer made "
        f"{f['explain maps']:.0f} map(s) in {f['explain seconds']:.1f} s (a forward and a backward pass "
        "per segment's explained clip, on the PyTorch model).",
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
    rounds = [pair(r, video, args.model, models_dir) for r in range(args.repeats)]
    medians = {name: statistics.median(got[name] for got in rounds) for name in rounds[0]}
    head = f"{args.model}, {args.seconds:g} s {width}x{height} H.264; medians of {args.repeats} round(s)."
    print("\n".join([head, "", *report(medians, args.seconds)]))


if __name__ == "__main__":
    main()
