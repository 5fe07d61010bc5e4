"""A finished job's explanation pictures, drawn by the worker's render child (``render_sandbox``)
for ``GET /v1/jobs/{id}/explanations/{segment}.png``.

One PNG per explanation, as ``vas analyze --explain-dir`` writes them (``explain_png.write_pngs``:
the frame shown at the map's middle step, upright and full size, the map blended on, the frame
weights in a strip below), into a temp folder that one rename publishes: a reader finds all of
a job's pictures or none, and a render killed half-way leaves only the temp folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.analysis.explain_png import write_pngs
from app.analysis.results import Explanation


def explanation_of(item: dict[str, Any]) -> Explanation:
    """One item of the results' ``explanations`` (``Explanation.to_dict``) as the typed value."""
    heat = item["heatmap"]
    return Explanation(
        segment=int(item["segment"]),
        label=str(item["label"]),
        class_id=int(item["class_id"]),
        method=str(item["method"]),
        frames=tuple((float(f["time"]), float(f["weight"])) for f in item["frames"]),
        times=tuple(float(t) for t in heat["times"]),
        data=heat["data"],
    )


def write_pictures(source: Path, target: Path, part: Path, explanations: Sequence[dict[str, Any]]) -> int:
    """Draw every explanation's picture into ``part`` (a new folder), then rename it to
    ``target`` (replacing an older one); returns how many were written."""
    written = write_pngs(
        source, [explanation_of(item) for item in explanations if item["heatmap"]["t"]], part
    )
    if target.exists():
        shutil.rmtree(target)
    part.rename(target)
    return len(written)
