"""Known answers for ``segmentation=shots`` with the demo model.

Demo scenes of known labels joined by hard cuts, through HTTP (upload, worker, results): one
segment per shot, each bounded within 2 frames of the cuts and labelled with its scene,
every frame decoded once; segments were planned while the video was still being decoded.
The options' conflicts are 422s; the CLI takes ``--segmentation shots``. A 3-minute video
with no cut is 18 equal segments of 10 s, its grid frames mostly waiting on disk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.analysis.decode_sandbox import SandboxLimits
from app.analysis.engine import Analyzer
from app.analysis.plan import SegmentPlan
from app.analysis.shot_source import ShotPlanClips
from app.api.app import create_app
from app.demo.synthetic import write_scripted_video
from app.options import JobOptions
from tests.conftest import REPO
from tests.integration.conftest import assert_problem, close_app, make_settings
from tests.shot_videos import FPS, Part, edited, write

MODELS = REPO / "models"
TOLERANCE = 2
PARTS = [
    Part("moving right", 3.0, 11),
    Part("rotating", 2.5, 12),
    Part("moving up", 2.0, 14),
    Part("moving left", 2.0, 16),
]


@pytest.fixture(scope="module")
def cut_video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int], int]:
    edit = edited(PARTS)
    path = write(edit.frames, tmp_path_factory.mktemp("shots") / "cuts.mp4")
    return path, edit.cuts, len(edit.frames)


@pytest.mark.anyio
async def test_one_segment_per_shot_through_http(
    tmp_path: Path, cut_video: tuple[Path, list[int], int]
) -> None:
    from tests.integration.conftest import finished_job

    video, cuts, frames = cut_video
    results, formats = await finished_job(
        tmp_path, MODELS, video, {"model": "demo_motion", "segmentation": "shots"}, "vtt"
    )
    segments = results["segments"]
    assert len(segments) == len(PARTS) == len(results["shots"])
    starts = [round(s["start"] * FPS) for s in segments[1:]]
    assert starts == pytest.approx(cuts, abs=TOLERANCE), starts
    assert [(s["start"], s["end"]) for s in segments] == [(s["start"], s["end"]) for s in results["shots"]]
    assert [s["labels"][0]["label"] for s in segments] == [p.label for p in PARTS]
    assert [r["label"] for r in results["runs"]] == [p.label for p in PARTS]
    assert results["video"]["decoded_frames"] == frames, "every frame decoded, once"
    options = results["options"]
    assert options["segmentation"] == "shots" and options["detect_shots"] is True
    assert options["segment_seconds"] is None and options["clips_per_segment"] is None
    assert formats["vtt"].count(" --> ") == len(PARTS)


def test_segments_are_planned_while_the_video_is_decoded(cut_video: tuple[Path, list[int], int]) -> None:
    video, _, _ = cut_video
    analyzer = Analyzer(models_dir=MODELS, allowed_formats=["mp4"], batch_size=4)
    task = analyzer.open_task(video, "demo_motion", JobOptions(segmentation="shots"))
    grown: list[tuple[int, bool]] = []

    def watched(segments: tuple[SegmentPlan, ...], final: bool) -> None:
        grown.append((len(segments), final))
        task.grow(segments, final)

    assert isinstance(task.source, ShotPlanClips)
    task.source.feed.on_plan = watched
    try:
        analyzer.scheduler().run([task])
    finally:
        task.close()
    assert task.error is None and task.result is not None
    assert sum(n for n, _ in grown) == len(PARTS)
    assert grown[0][0] >= 1 and not grown[0][1], f"the first shots came before the end: {grown}"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fields", "conflict"),
    [
        ({"segments": "[[0, 4]]"}, "segments conflicts with segmentation"),
        ({"segment_seconds": "2"}, "segmentation=shots conflicts with segment_seconds"),
        ({"stride_seconds": "1"}, "segmentation=shots conflicts with stride_seconds"),
        ({"segmentation": "scenes"}, "segmentation"),
    ],
)
async def test_conflicting_options_are_refused(
    tmp_path: Path, cut_video: tuple[Path, list[int], int], fields: dict[str, str], conflict: str
) -> None:
    app = create_app(make_settings(tmp_path, MODELS, default_model="demo_motion"))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            with cut_video[0].open("rb") as fh:
                response = await client.post(
                    "/v1/jobs",
                    files={"file": ("cuts.mp4", fh, "video/mp4")},
                    data={"segmentation": "shots", **fields},
                )
            body = assert_problem(response, 422, "invalid_options")
            assert conflict in body["detail"], body
            spec = (await client.get("/openapi.json")).json()
            form = spec["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]
            assert form["schema"]["properties"]["segmentation"]["enum"] == ["fixed", "shots"]
    finally:
        close_app(app)


def test_the_cli_flag(cut_video: tuple[Path, list[int], int]) -> None:
    video = str(cut_video[0])
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "analyze",
            video,
            "--model",
            "demo_motion",
            "--segmentation",
            "shots",
            "--json",
        ],
        cwd=REPO,
        env={**os.environ, "VAS_MODELS_DIR": str(MODELS)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    segments = json.loads(out.stdout)["segments"]
    assert [s["labels"][0]["label"] for s in segments] == [p.label for p in PARTS]


def test_a_long_single_shot_is_cut_into_equal_segments(tmp_path: Path) -> None:
    path = tmp_path / "three_minutes.mp4"
    write_scripted_video(path, [("moving right", 180.0)], fps=10, width=96, height=72, seed=7)
    small_memory = SandboxLimits(queue_bytes=2 * 1024**2)  # most grid frames wait on disk
    analyzer = Analyzer(models_dir=MODELS, allowed_formats=["mp4"], batch_size=8, sandbox=small_memory)
    result = analyzer.analyze(path, "demo_motion", JobOptions(segmentation="shots", max_segment_seconds=10))
    assert result.shots is not None and len(result.shots) == 1
    bounds = [(s.start, s.end) for s in result.segments]
    assert bounds == [pytest.approx((10.0 * i, 10.0 * i + 10)) for i in range(18)]
    assert result.video.decoded_frames == 1800
    assert {s.labels[0].label for s in result.segments} == {"moving right"}
