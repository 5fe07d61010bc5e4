"""Training steps the demo-model scripts share (``train_demo_model.py``, ``train_demo_multilabel.py``,
``train_demo_mvit.py``, ``train_demo_detection.py``): the weights' moving average, the running
figures and the seconds budget of a training loop, and the models' entries in manifest.json.

Same arithmetic in the same order as each script had on its own, so retraining gives the same
weights.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch


def ema_update(
    ema: torch.nn.Module, model: torch.nn.Module, step: int, decay: float, *, buffers: bool = False
) -> None:
    """Move ``ema``'s weights towards ``model``'s (the decay ramps up over the first steps);
    ``buffers``: also copy the model's buffers (BatchNorm statistics) as they are."""
    keep = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
            p_ema.mul_(keep).add_(p, alpha=1 - keep)
        if buffers:
            for b_ema, b in zip(ema.buffers(), model.buffers(), strict=True):
                b_ema.copy_(b)


def smoothed(running: float, value: float, step: int) -> float:
    """A loop's running figure: ``value`` at step 1, then an exponential average (0.9)."""
    return 0.9 * running + 0.1 * value if step > 1 else value


def budget_reached(elapsed: float, seconds_budget: float, step: int, steps: int) -> bool:
    """True (and says so) when the seconds budget is spent before the last step."""
    if elapsed > seconds_budget and step < steps:
        print(f"  seconds budget ({seconds_budget:.0f} s) reached at step {step}; stopping early", flush=True)
        return True
    return False


def write_entries(out: Path, entries: Sequence[dict[str, Any]], *, first: bool = False) -> None:
    """Add or replace ``entries`` (by name) in <out>/manifest.json, keeping every other entry;
    ``first``: put them before the others, else after."""
    path = out / "manifest.json"
    names = {entry["name"] for entry in entries}
    models = json.loads(path.read_text())["models"] if path.exists() else []
    kept = [m for m in models if m.get("name") not in names]
    models = [*entries, *kept] if first else [*kept, *entries]
    path.write_text(json.dumps({"models": models}, indent=2) + "\n")
