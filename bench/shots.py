"""What shot detection costs a job: ours as a CLI process on the same video without and with
``--detect-shots``, the order alternating from round to round (medians over rounds), and the
detector's own rate from the job's provenance (``timings.shots_seconds``: time in its network,
which overlaps decoding and the clip model, over the frames it read).

``bench/pipeline.py`` runs one pair per round (its plain CLI run is the pair's "without") and
prints ``report``. On its own, for a quick look at a small video::

    .venv/bin/python bench/shots.py --size 320x180 --seconds 6 --repeats 2
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import paired
from bench.runs import Run, log, ours


def pair(r: int, video: Path, model: str, models_dir: Path) -> dict[str, Run]:
    """One run without shots and one with, the second first on odd rounds."""
    runs: dict[str, Run] = {}
    for kind in paired.order(r, "shots"):
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
    plain, shots = (
        paired.process_figures(runs["plain"], "cli"),
        paired.process_figures(runs["shots"], "cli shots"),
    )
    return plain | shots | shot_figures(runs["shots"])


def report(f: dict[str, float], video_seconds: float) -> list[str]:
    """The side-by-side table and the closing note on the ratio; ``f``: medians by name."""
    plain, shots = f["cli wall"], f["cli shots wall"]
    kinds = (
        ("ours, CLI process", "cli", "1.00x"),
        ("ours, CLI process, --detect-shots", "cli shots", f"{shots / plain:.2f}x"),
    )
    rate = f["shots frames"] / f["shots seconds"] if f["shots seconds"] > 0 else float("nan")
    return [
        paired.cost_table(f, video_seconds, kinds, "vs without shots"),
        "",
        f"Shot detection makes the job take {shots / plain:.2f}x its wall time ({shots - plain:+.1f} s) "
        f"and {f['cli shots cpu'] / f['cli cpu']:.2f}x its CPU time; the detector read "
        f"{f['shots frames']:.0f} frames at {rate:.1f} frames/s in its network "
        f"({f['shots seconds']:.1f} s, overlapped with decoding and the clip model) and found "
        f"{f['shots found']:.0f} shot(s).",
    ]


if __name__ == "__main__":
    paired.main(__doc__.splitlines()[0], lambda r, *run: figures(pair(r, *run)), report)
