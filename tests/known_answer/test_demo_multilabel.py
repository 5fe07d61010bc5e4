"""Known answers for a multi-label model: two objects act at once, each following its own
script; through the full HTTP path, the shipped ``demo_motion_multi`` must give most 1 s
segments exactly the scripted *set* of actions (at the default ``min_score``, 0.5), and its
per-label runs, which overlap in time, must start and end within one segment of the script.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from app.demo.actors import ACTIONS, NO_ACTION, write_actors_video
from tests.conftest import REPO
from tests.integration.conftest import finished_job

MODELS = REPO / "models"
MODEL = "demo_motion_multi"
SEGMENT_SECONDS = 1.0
Scripts = list[list[tuple[str, float]]]
# Per video: one script per object (all 12 s), frame size, seed. Each has stretches with one,
# two and no actions going on, and actions that start while another is under way.
VIDEOS: dict[str, tuple[Scripts, int, int, int]] = {
    "right+flashing": (
        [
            [("moving right", 6.0), ("static", 6.0)],
            [("static", 3.0), ("flashing", 6.0), ("static", 3.0)],
        ],
        192,
        144,
        4242,
    ),
    "left+rotating+down": (
        [
            [("static", 2.0), ("rotating", 6.0), ("moving down", 4.0)],
            [("moving left", 5.0), ("static", 3.0), ("flashing", 4.0)],
        ],
        320,
        240,
        99,
    ),
}


@pytest.fixture(autouse=True)
def demo_model_committed() -> None:
    """The model ships in models/ (models/DEMO_MODEL.md): its absence is a broken checkout."""
    assert (MODELS / f"{MODEL}.pyth").exists(), f"models/{MODEL}.pyth is missing"


def intervals(scripts: Scripts) -> list[tuple[str, float, float]]:
    """Every scripted action as (label, start, end), ``static`` left out."""
    out = []
    for script in scripts:
        t = 0.0
        for label, seconds in script:
            if label != NO_ACTION:
                out.append((label, t, t + seconds))
            t += seconds
    return out


def expected_set(scripts: Scripts, t: float) -> set[str]:
    return {label for label, start, end in intervals(scripts) if start <= t < end}


CLIPS_PER_SEGMENT = 3
"""Views averaged per segment (a job option): steadier sigmoids at the 0.5 threshold."""


@pytest.fixture(scope="module", params=sorted(VIDEOS))
def scripted(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Scripts]:
    scripts, width, height, seed = VIDEOS[request.param]
    path = tmp_path_factory.mktemp("multi") / "actors.mp4"
    write_actors_video(path, scripts, fps=30, width=width, height=height, seed=seed)
    return path, scripts


def check_segments(segments: list[dict[str, Any]], scripts: Scripts) -> None:
    assert len(segments) == 12
    right = 0
    for seg in segments:
        middle = (seg["start"] + seg["end"]) / 2
        kept = [x["label"] for x in seg["labels"]]
        assert all(x["score"] >= 0.5 for x in seg["labels"]), seg
        right += set(kept) == expected_set(scripts, middle)
    assert right / len(segments) >= 0.9, f"exact label sets on {right}/{len(segments)} segments: {segments}"


def check_runs(runs: list[dict[str, Any]], scripts: Scripts) -> None:
    """Runs and scripted actions pair up one to one, within one segment at both ends."""
    wanted = intervals(scripts)
    assert len(runs) == len(wanted), f"runs {runs} vs script {wanted}"
    for label, start, end in wanted:
        match = [
            r
            for r in runs
            if r["label"] == label
            and abs(r["start"] - start) <= SEGMENT_SECONDS + 1e-6
            and abs(r["end"] - end) <= SEGMENT_SECONDS + 1e-6
        ]
        assert len(match) == 1, f"{label} {start}-{end} s: runs {runs}"
    overlapping = any(
        a["label"] != b["label"] and a["start"] < b["end"] and b["start"] < a["end"]
        for a in runs
        for b in runs
    )
    assert overlapping, "the script overlaps two actions; so must the runs"


@pytest.mark.anyio
async def test_known_label_sets_through_http(tmp_path: Path, scripted: tuple[Path, Scripts]) -> None:
    video, scripts = scripted
    data = {
        "model": MODEL,
        "segment_seconds": str(SEGMENT_SECONDS),
        "clips_per_segment": str(CLIPS_PER_SEGMENT),
    }
    results, texts = await finished_job(tmp_path, MODELS, video, data, "csv")
    table = texts["csv"]
    assert results["task"] == "multilabel" and results["labelset"] == "demo-motion-multi"
    assert results["options"]["min_score"] == 0.5, "unset min_score: the model's default, echoed"
    check_segments(results["segments"], scripts)
    check_runs(results["runs"], scripts)
    summary = {x["label"]: x for x in results["summary"]}
    for label in {label for label, _, _ in intervals(scripts)}:
        seconds = sum(end - start for name, start, end in intervals(scripts) if name == label)
        assert summary[label]["share"] == pytest.approx(seconds / 12.0, abs=2 * SEGMENT_SECONDS / 12.0)
        assert 0.5 <= summary[label]["score"] <= 1.0
    assert set(summary) <= set(ACTIONS)
    rows = list(csv.DictReader(io.StringIO(table)))
    assert len(rows) == sum(max(1, len(s["labels"])) for s in results["segments"])
