"""torch's frame choice on this CPU, recorded by an export so a job on it needs no torch.

PyTorchVideo picks a window's frames with torch's float32 ``linspace``; its vectorised kernel
rounds by the machine's SIMD width, so where a value lands within a few ulps of a whole frame
(x3d_s's 77-frame windows, 29.97 fps, are one case) only torch itself knows the answer on this
CPU (``plan.emulation_is_exact``). ``models export`` (which has torch loaded anyway) asks
torch for every such window of the model's clip length up to ``UP_TO`` frames and records,
in its report, the ones where torch differs from the numpy emulation (often none). A job
that runs the export without torch learns them from the report (``learn_from_export``) when
the report was written on the same CPU model with the same torch version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from app.analysis.artifacts import cpu_model, report_path
from app.analysis.plan import emulated_subsample_indices, emulation_is_exact, learn_torch_answers
from app.analysis.spec import ModelSpec

UP_TO = 4096
"""Window lengths recorded (frames): 4096 is 17 s at 240 fps, beyond any zoo clip."""


def window_sizes(spec: ModelSpec) -> list[int]:
    """The T values the plan and SlowFast's packing ask linspace for: the clip's frames, and
    its slow pathway's (a window of T frames taken down to T // alpha)."""
    sizes = {spec.frames}
    if spec.alpha:
        sizes.add(spec.frames // spec.alpha)
    return sorted(sizes)


def torch_version() -> str:
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return "unknown"


def torch_answers(spec: ModelSpec, up_to: int = UP_TO) -> dict[str, Any]:
    """For the report: where torch's choice differs from the emulation, window by window."""
    import torch

    windows: dict[str, dict[str, list[int]]] = {}
    for t in window_sizes(spec):
        differs: dict[str, list[int]] = {}
        for n in range(1, up_to + 1):
            if emulation_is_exact(n, t):
                continue
            answer = [int(i) for i in torch.linspace(0, n - 1, t).clamp(0, n - 1).long().tolist()]
            if answer != emulated_subsample_indices(n, t):
                differs[str(n)] = answer
        windows[str(t)] = differs
    return {"cpu": cpu_model(), "torch": torch_version(), "up_to": up_to, "differs": windows}


def learn_from_export(artifact: Path) -> bool:
    """``learn_from_report`` with the report written beside ``artifact`` (False: none usable)."""
    try:
        report = json.loads(report_path(artifact).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(report, dict) and learn_from_report(report)


def learn_from_report(report: Mapping[str, Any]) -> bool:
    """Teach the plan the report's answers if they hold here (same CPU model and torch)."""
    choice = report.get("frame_choice")
    if not isinstance(choice, Mapping):
        return False
    if choice.get("cpu") != cpu_model() or choice.get("torch") != torch_version():
        return False
    up_to = int(choice.get("up_to", 0))
    for t, differs in dict(choice.get("differs", {})).items():
        learn_torch_answers(int(t), up_to, {int(n): list(v) for n, v in dict(differs).items()})
    return True
