"""Known answers for shot detection (TransNetV2's pretrained weights, ``detect_shots``).

Synthetic: demo scenes, each on a backdrop of its own, joined by hard cuts at known frames
and one cross-dissolve: every cut is found within 2 frames, nothing else is, the dissolve
is a gradual transition. A single scene with a 0.3 s flash, and a fast pan, are one shot.
Real: pieces of the real clips in tests/data joined end to end (re-encoded to one size and
rate): precision and recall of the cuts within 2 frames are both at least 0.95, and each
clip alone is one shot (but mmaction2's demo clip, which has a cut of its own near its end). The engine runs in its sandboxed decode child, which decodes the
video once for the clips and the shots.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from app.analysis.engine import Analyzer
from app.analysis.results import AnalysisResult
from app.options import JobOptions
from tests.conftest import REPO
from tests.shot_videos import FPS, Part, edited, joined_real, panned, with_flash, write

MODELS = REPO / "models"
DATA = REPO / "tests" / "data"
FORMATS = ["mp4", "mov", "mkv", "avi", "webm"]
TOLERANCE = 2
"""Frames a found cut may be off by."""

PARTS = [
    Part("moving right", 3.0, 11),
    Part("rotating", 2.5, 12),
    Part("flashing", 3.0, 13),
    Part("moving up", 2.0, 14),
    Part("static", 2.5, 15),
    Part("moving left", 2.0, 16),
]
DISSOLVE_AFTER = 2
"""The join after this part is a 20-frame cross-dissolve; the others are hard cuts."""


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer(models_dir=MODELS, allowed_formats=FORMATS, batch_size=8)


def analyze(analyzer: Analyzer, path: Path, **options: Any) -> AnalysisResult:
    return analyzer.analyze(path, "demo_motion", JobOptions(detect_shots=True, **options))


def found_starts(result: AnalysisResult, fps: float) -> list[tuple[int, str | None]]:
    assert result.shots is not None
    return [(round(shot.start * fps), shot.transition) for shot in result.shots[1:]]


def check_covering(result: AnalysisResult) -> None:
    """Shots follow one another from 0 to the video's end."""
    shots = result.shots
    assert shots and shots[0].start == 0.0 and shots[0].transition is None
    assert [s.index for s in shots] == list(range(len(shots)))
    assert all(a.end == b.start and a.start < a.end for a, b in itertools.pairwise(shots))
    assert shots[-1].end == pytest.approx(result.video.duration, abs=1.5 / (result.video.fps or 25))


@pytest.mark.parametrize("sandboxed", [True, False], ids=["decode-child", "in-process"])
def test_cuts_and_a_dissolve_at_known_frames(analyzer: Analyzer, tmp_path: Path, sandboxed: bool) -> None:
    edit = edited(PARTS, dissolve_after=DISSOLVE_AFTER)
    engine = (
        analyzer
        if sandboxed
        else Analyzer(models_dir=MODELS, allowed_formats=FORMATS, decode_in_subprocess=False)
    )
    result = analyze(engine, write(edit.frames, tmp_path / "edited.mp4"), segment_seconds=1.0)
    assert result.video.decoded_frames == len(edit.frames), "every frame decoded, once"
    assert result.provenance.timings.shots_seconds is not None
    check_covering(result)
    found = found_starts(result, FPS)
    cuts = [k for k, kind in found if kind == "cut"]
    gradual = [k for k, kind in found if kind == "gradual"]
    for cut in edit.cuts:
        assert any(abs(k - cut) <= TOLERANCE for k in cuts), f"cut at frame {cut} not found in {found}"
    assert len(cuts) == len(edit.cuts), f"cuts found {cuts}, made {edit.cuts}"
    ((first, last),) = edit.dissolves
    assert len(gradual) == 1 and first <= gradual[0] <= last + 1, f"dissolve {first}-{last}: {found}"
    assert result.to_dict()["shots"][1] == {
        "index": 1,
        "start": result.shots[1].start,  # type: ignore[index]
        "end": result.shots[1].end,  # type: ignore[index]
        "transition": "cut",
    }


@pytest.mark.parametrize("kind", ["flash", "pan"])
def test_a_flash_or_a_fast_pan_is_no_cut(analyzer: Analyzer, tmp_path: Path, kind: str) -> None:
    if kind == "flash":  # 0.3 s washed out towards white in the middle of one scene
        frames = with_flash(
            edited([Part("moving right", 4.0, 21)]).frames, at=2 * FPS, count=round(0.3 * FPS)
        )
    else:  # the whole picture moves 12 px a frame (360 px/s in a 160 px wide frame)
        frames = panned(4.0, pixels_per_frame=12, seed=5)
    result = analyze(analyzer, write(frames, tmp_path / f"{kind}.mp4"))
    check_covering(result)
    assert result.shots is not None and len(result.shots) == 1, result.shots


def test_without_detect_shots_results_have_no_shots(analyzer: Analyzer, tmp_path: Path) -> None:
    path = write(edited([Part("static", 1.0, 31), Part("rotating", 1.0, 32)]).frames, tmp_path / "two.mp4")
    result = analyzer.analyze(path, "demo_motion", JobOptions())
    assert result.shots is None and "shots" not in result.to_dict()
    assert "shots_seconds" not in result.to_dict()["provenance"]["timings"]


REAL = [DATA / "decord_flipping_a_pancake.mkv", DATA / "mmaction2_demo.mp4", DATA / "mmaction2_test.avi"]
PIECES = [
    (REAL[0], 0.0, 2.5),
    (REAL[1], 0.0, 2.5),
    (REAL[2], 0.0, 2.0),
    (REAL[0], 4.0, 2.5),
    (REAL[1], 4.0, 2.5),
    (REAL[2], 3.0, 2.0),
    (REAL[0], 7.5, 2.5),
    (REAL[1], 7.0, 2.5),
]


def test_real_clips_joined_end_to_end(analyzer: Analyzer, tmp_path: Path) -> None:
    path = tmp_path / "joined.mp4"
    cuts = joined_real(PIECES, path)
    result = analyze(analyzer, path, segment_seconds=2.0)
    check_covering(result)
    found = [k for k, _ in found_starts(result, 25.0)]
    hits = [c for c in cuts if any(abs(k - c) <= TOLERANCE for k in found)]
    true = [k for k in found if any(abs(k - c) <= TOLERANCE for c in cuts)]
    recall, precision = len(hits) / len(cuts), len(true) / max(len(found), 1)
    assert recall >= 0.95 and precision >= 0.95, f"cuts {cuts}, found {found}"


KNOWN_CUTS = {REAL[0]: [], REAL[1]: [268], REAL[2]: []}
"""mmaction2's demo clip has a cut of its own: frame 268 (of 280, at 28 fps) opens a close-up."""


@pytest.mark.parametrize("clip", REAL, ids=lambda p: p.name)
def test_each_real_clip_alone(analyzer: Analyzer, clip: Path) -> None:
    result = analyze(analyzer, clip, segment_seconds=4.0)
    check_covering(result)
    found = [k for k, _ in found_starts(result, result.video.fps or 25.0)]
    assert len(found) == len(KNOWN_CUTS[clip]), result.shots
    assert all(abs(k - c) <= TOLERANCE for k, c in zip(found, KNOWN_CUTS[clip], strict=True)), found


@pytest.mark.anyio
async def test_detect_shots_through_http(tmp_path: Path) -> None:
    from tests.integration.conftest import finished_job

    edit = edited(PARTS[:3])
    video = write(edit.frames, tmp_path / "three.mp4")
    results, _ = await finished_job(tmp_path, MODELS, video, {"model": "demo_motion", "detect_shots": "true"})
    starts = [(round(s["start"] * FPS), s["transition"]) for s in results["shots"]]
    assert [k for k, _ in starts[1:]] == pytest.approx(edit.cuts, abs=TOLERANCE), starts
    assert {t for _, t in starts[1:]} == {"cut"} and results["options"]["detect_shots"] is True
    assert results["provenance"]["timings"]["shots_seconds"] > 0
