"""Chosen time ranges through the real HTTP path, the CLI and the client, with the demo model
on a scripted video: a range inside one scripted part gets that part's label, whatever the
ranges' order; bad ranges are refused at submission, after the probe, and leave nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.api.app import create_app
from app.demo.synthetic import write_scripted_video
from app.settings import Settings
from app.worker.runner import Worker
from tests.conftest import REPO
from tests.integration.conftest import assert_problem, close_app, make_settings, shared_analyzer
from tests.live import serving

MODELS = REPO / "models"
SCRIPT = [("moving right", 4.0), ("static", 4.0), ("moving up", 4.0)]
RANGES = [[8.5, 11.5], [0.5, 3.5], [4.5, 7.5], [1.0, 3.0]]  # unordered, the last inside the second
EXPECTED = ["moving up", "moving right", "static", "moving right"]

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ranges") / "scripted.mp4"
    write_scripted_video(path, SCRIPT, fps=30, width=192, height=144, seed=2024)
    return path


@pytest.fixture
def demo_settings(tmp_path: Path) -> Settings:
    assert (MODELS / "demo_motion.pyth").exists(), "models/demo_motion.pyth is missing (make demo-model)"
    return make_settings(tmp_path, MODELS, default_model="demo_motion")


@pytest.fixture
def demo_app(demo_settings: Settings) -> Iterator[FastAPI]:
    app = create_app(demo_settings)
    yield app
    close_app(app)


@pytest.fixture
async def client(demo_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=demo_app), base_url="http://t") as http:
        yield http


async def post(client: httpx.AsyncClient, video: Path, **fields: str) -> httpx.Response:
    with video.open("rb") as fh:
        return await client.post("/v1/jobs", files={"file": (video.name, fh, "video/mp4")}, data=fields)


async def test_each_range_gets_the_label_of_the_part_it_covers(
    client: httpx.AsyncClient, demo_app: FastAPI, demo_settings: Settings, scripted: Path
) -> None:
    response = await post(client, scripted, segments=json.dumps(RANGES), clips_per_segment="2", top_k="3")
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    worker = Worker(
        store=demo_app.state.store,
        blobs=demo_app.state.blobs,
        settings=demo_settings,
        analyzer_factory=lambda: shared_analyzer(demo_settings),
    )
    assert worker.run_once()
    job = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert job["status"] == "succeeded", job
    results = (await client.get(f"/v1/jobs/{job_id}/results")).json()
    segments = results["segments"]
    assert [[s["start"], s["end"]] for s in segments] == RANGES  # in the order given, as given
    assert [s["labels"][0]["label"] for s in segments] == EXPECTED
    assert results["options"]["segments"] == RANGES and results["options"]["segment_seconds"] is None
    runs = [(r["label"], r["start"], r["end"]) for r in results["runs"]]
    assert runs == [("moving right", 0.5, 3.5), ("static", 4.5, 7.5), ("moving up", 8.5, 11.5)]
    assert results["summary"][0]["label"] in {"moving right", "static", "moving up"}
    vtt = await client.get(f"/v1/jobs/{job_id}/results", params={"format": "vtt"})
    assert vtt.status_code == 200
    # One cue per range, by start; the range holding another hands over at its start.
    assert "00:00:00.500 --> 00:00:01.000" in vtt.text and "00:00:08.500 --> 00:00:11.500" in vtt.text
    assert vtt.text.count(" --> ") == len(RANGES)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"segments": "[[0, 4], [10, 12.5]]"}, "segments[1] [10, 12.5] ends after the video, which is 12 s"),
        ({"segments": "[]"}, "at least one"),
        ({"segments": "[[3, 2]]"}, "end must be greater than start"),
        ({"segments": json.dumps([[0, 1]] * 1001)}, "at most 1,000 ranges"),
        ({"segments": "[[0, 4]]", "segment_seconds": "2"}, "segments conflicts with segment_seconds"),
        ({"segments": "[[0, 4]]", "stride_seconds": "1"}, "segments conflicts with stride_seconds"),
        ({"segments": "0:4"}, "segments must be JSON"),
    ],
)
async def test_bad_ranges_are_refused_at_submission(
    client: httpx.AsyncClient, demo_settings: Settings, scripted: Path, fields: dict[str, str], message: str
) -> None:
    body = assert_problem(await post(client, scripted, **fields), 422, "invalid_options")
    assert message in body["detail"], body
    videos = demo_settings.videos_dir
    assert not (videos.exists() and any(p.is_file() for p in videos.rglob("*"))), "nothing is stored"


async def test_the_openapi_document_describes_the_field(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    body = spec["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]
    for media in ("multipart/form-data", "application/json"):
        assert "segments" in body[media]["schema"]["properties"]


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=REPO,
        env={**os.environ, "VAS_MODELS_DIR": str(MODELS), **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_cli_analyses_the_ranges(scripted: Path) -> None:
    out = run_cli(
        "analyze", str(scripted), "--model", "demo_motion", "--segments", "8.5:11.5, 0.5:3.5", "--json"
    )
    assert out.returncode == 0, out.stderr
    segments = json.loads(out.stdout)["segments"]
    assert [(s["start"], s["end"], s["labels"][0]["label"]) for s in segments] == [
        (8.5, 11.5, "moving up"),
        (0.5, 3.5, "moving right"),
    ]
    clash = run_cli("analyze", str(scripted), "--segments", "0:4", "--segment-seconds", "2")
    assert clash.returncode == 2 and "segments conflicts with segment_seconds" in clash.stderr
    bad = run_cli("analyze", str(scripted), "--segments", "0-4")
    assert bad.returncode == 2 and "START:END" in bad.stderr


def test_the_client_sends_the_ranges(demo_app: FastAPI, scripted: Path) -> None:
    with serving(demo_app) as base:
        out = run_cli("submit", str(scripted), "--segments", "0:4,10:12", "--url", base)
        assert out.returncode == 0, out.stderr
        job: dict[str, Any] = httpx.get(f"{base}/v1/jobs/{out.stdout.strip()}").json()
        assert job["options"]["segments"] == [[0.0, 4.0], [10.0, 12.0]]
        past = run_cli("submit", str(scripted), "--segments", "10:13", "--url", base)
        assert past.returncode == 1 and "ends after the video" in past.stderr
