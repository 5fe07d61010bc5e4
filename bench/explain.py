"""What ``explain`` costs a job: ours as a CLI process on the same video without and with
``--explain`` (a forward and a backward pass per segment's explained clip, on the PyTorch
model), the order alternating from round to round (medians over rounds), and the explainer's
own time from the job's provenance (``timings.explain_seconds``).

``bench/pipeline.py`` runs the ``--explain`` run once per round beside its plain CLI run and
prints ``report``. On its own, for a quick look at a small video::

    .venv/bin/python bench/explain.py --size 320x180 --seconds 10 --repeats 1
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import paired
from bench.runs import Run, log, ours


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
    return paired.process_figures(run, "cli explain") | {
        "explain seconds": float(results["provenance"]["timings"].get("explain_seconds", 0.0)),
        "explain maps": float(len(results.get("explanations") or [])),
    }


def pair(r: int, video: Path, model: str, models_dir: Path) -> dict[str, float]:
    """One run without and one with ``--explain``, the second first on odd rounds."""
    out: dict[str, float] = {}
    for kind in paired.order(r, "explain"):
        if kind == "explain":
            out |= figures(explained(video, model, models_dir))
        else:
            out |= paired.process_figures(plain(video, model, models_dir), "cli")
    return out


def report(f: dict[str, float], video_seconds: float) -> list[str]:
    """The side-by-side table and the closing note on the ratio; ``f``: medians by name
    (``cli wall/cpu/rss`` without, ``cli explain ...`` with)."""
    plain_wall, wall = f["cli wall"], f["cli explain wall"]
    kinds = (
        ("ours, CLI process", "cli", "1.00x"),
        ("ours, CLI process, --explain", "cli explain", f"{wall / plain_wall:.2f}x"),
    )
    return [
        paired.cost_table(f, video_seconds, kinds, "vs without explain"),
        "",
        f"Explaining makes the job take {wall / plain_wall:.2f}x its wall time ({wall - plain_wall:+.1f} s) "
        f"and {f['cli explain cpu'] / f['cli cpu']:.2f}x its CPU time; the explainer made "
        f"{f['explain maps']:.0f} map(s) in {f['explain seconds']:.1f} s (a forward and a backward pass "
        "per segment's explained clip, on the PyTorch model).",
    ]


if __name__ == "__main__":
    paired.main(__doc__.splitlines()[0], pair, report)
