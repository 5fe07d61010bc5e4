"""Known answers: the shipped demo model must label a scripted video correctly, at the right times.

The video's parts follow a script (e.g. right 0-4 s, static 4-8 s, ...); the returned per-segment
top-1 labels must match the script on >= 95 % of segments, and every label change must sit within
one segment of a scripted boundary. Run through the full HTTP path and through the CLI.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.api.app import create_app
from app.demo.classes import CLASSES
from app.demo.synthetic import write_scripted_video
from tests.conftest import REPO
from tests.integration.conftest import app_worker, close_app, make_settings

MODELS = REPO / "models"
PART_SECONDS = 4.0
SEGMENT_SECONDS = 2.0
# Every class once, in an order where each part differs from the previous one.
SCRIPT = [
    ("moving right", PART_SECONDS),
    ("static", PART_SECONDS),
    ("moving up", PART_SECONDS),
    ("moving left", PART_SECONDS),
    ("rotating", PART_SECONDS),
    ("moving down", PART_SECONDS),
    ("flashing", PART_SECONDS),
]
# A second video: another size (4:3, short side 240 scaled to 64), seed and class order.
SCRIPT_2 = [SCRIPT[i] for i in (6, 2, 4, 0, 5, 1, 3)]
VIDEOS = {"192x144": (SCRIPT, 192, 144, 2024), "320x240": (SCRIPT_2, 320, 240, 77)}


Script = list[tuple[str, float]]


@pytest.fixture(autouse=True)
def demo_model_committed() -> None:
    """The demo model is committed (models/DEMO_MODEL.md): its absence is a broken checkout,
    not a skip. Checked per test, so it fails these tests rather than the suite's collection."""
    assert (MODELS / "demo_motion.pyth").exists(), "models/demo_motion.pyth is missing (make demo-model)"


@pytest.fixture(scope="module", params=sorted(VIDEOS))
def scripted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Script]:
    script, width, height, seed = VIDEOS[request.param]
    assert {label for label, _ in script} == set(CLASSES), "the script covers every demo class"
    path = tmp_path_factory.mktemp("known") / "scripted.mp4"
    write_scripted_video(path, script, fps=30, width=width, height=height, seed=seed)
    return path, script


def expected_label(script: Script, t: float) -> str:
    return script[min(int(t // PART_SECONDS), len(script) - 1)][0]


def check_segments(segments: list[dict[str, Any]], script: Script) -> None:
    assert len(segments) == int(len(script) * PART_SECONDS / SEGMENT_SECONDS)
    hits = 0
    for segment in segments:
        middle = (segment["start"] + segment["end"]) / 2
        top1 = segment["labels"][0]["label"]
        hits += top1 == expected_label(script, middle)
        assert segment["first_frame_time"] >= segment["start"] - 1e-6
        assert segment["last_frame_time"] <= segment["end"] + 1e-6
    agreement = hits / len(segments)
    assert agreement >= 0.95, f"demo model agreed with the script on {agreement:.0%} of segments"
    boundaries = [PART_SECONDS * i for i in range(1, len(script))]
    for prev, cur in itertools.pairwise(segments):
        if prev["labels"][0]["label"] != cur["labels"][0]["label"]:
            nearest = min(abs(cur["start"] - b) for b in boundaries)
            assert nearest <= SEGMENT_SECONDS + 1e-6, (
                f"label change at {cur['start']}s is far from any boundary"
            )


@pytest.mark.anyio
async def test_known_answer_through_http(tmp_path: Path, scripted: tuple[Path, Script]) -> None:
    scripted_video, script = scripted
    settings = make_settings(tmp_path, MODELS, default_model="demo_motion")
    app = create_app(settings)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            models = (await client.get("/v1/models")).json()["items"]
            demo = next(m for m in models if m["name"] == "demo_motion")
            assert demo["weights_present"] is True and demo.get("demo") is True
            with scripted_video.open("rb") as fh:
                response = await client.post(
                    "/v1/jobs",
                    files={"file": ("scripted.mp4", fh, "video/mp4")},
                    data={"model": "demo_motion", "segment_seconds": str(SEGMENT_SECONDS), "top_k": "3"},
                )
            assert response.status_code == 202, response.text
            job_id = response.json()["id"]
            worker = app_worker(app)
            assert worker.run_once()
            job = (await client.get(f"/v1/jobs/{job_id}")).json()
            assert job["status"] == "succeeded", job
            results = (await client.get(f"/v1/jobs/{job_id}/results")).json()
    finally:
        close_app(app)
    assert results["labelset"] == "demo-motion"
    check_segments(results["segments"], script)
    runs = results["runs"]
    assert runs[0]["start"] == pytest.approx(0.0) and runs[-1]["end"] == pytest.approx(
        len(script) * PART_SECONDS
    )
    assert all(a["end"] == pytest.approx(b["start"]) for a, b in itertools.pairwise(runs)), runs
    assert all(a["label"] != b["label"] for a, b in itertools.pairwise(runs)), "runs merge equal neighbours"


def test_known_answer_through_the_cli(scripted: tuple[Path, Script]) -> None:
    scripted_video, script = scripted
    env = {**os.environ, "VAS_MODELS_DIR": str(MODELS)}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "analyze",
            str(scripted_video),
            "--model",
            "demo_motion",
            "--segment-seconds",
            str(SEGMENT_SECONDS),
            "--json",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    check_segments(json.loads(out.stdout)["segments"], script)
