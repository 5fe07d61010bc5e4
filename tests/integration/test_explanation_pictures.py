"""Explanations as pictures, through the real app (ASGI, SQLite, blob storage), the real worker
and its sandboxed render child, on the committed demo model: ``GET
/v1/jobs/{id}/explanations/{segment}.png`` (drawn by the worker right after the job, full size
on the displayed frame, rotation applied) and ``annotated.mp4?overlay=heatmap`` (a render of
its own beside the plain one); their errors; and their files going with the job."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from PIL import Image

from app.analysis.explain_png import STRIP, frames_at
from app.api.app import create_app
from app.demo.synthetic import SyntheticScene, write_scripted_video
from app.store.renders import cached_renders, delete_cached, remove_cached, renders_dir
from tests.conftest import REPO
from tests.integration.conftest import app_worker, assert_problem, close_app, make_settings
from tests.media import write_video

pytestmark = pytest.mark.anyio

MODELS = REPO / "models"
SEGMENT = "2.0"
HEIGHT = 96
"""The annotated videos' height cap here (small: fast renders)."""


@asynccontextmanager
async def demo_app(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    settings = make_settings(tmp_path, MODELS, default_model="demo_motion", annotate_max_height=HEIGHT)
    app = create_app(settings)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            yield client, app
    finally:
        close_app(app)


async def upload(client: httpx.AsyncClient, path: Path, *, explain: bool) -> str:
    with path.open("rb") as fh:
        response = await client.post(
            "/v1/jobs",
            files={"file": (path.name, fh, "video/mp4")},
            data={"model": "demo_motion", "segment_seconds": SEGMENT, "explain": str(explain).lower()},
        )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def rotated_scene(path: Path) -> Path:
    """Demo scenes coded 160x120 with a quarter-turn display matrix: shown 120 wide, 160 high."""
    scene = SyntheticScene([("moving right", 2.0), ("rotating", 2.0)], fps=30, width=160, height=120, seed=3)
    return write_video(
        path,
        seconds=4.0,
        fps=30,
        width=160,
        height=120,
        rotation=90,
        frame_fn=lambda i, t, w, h: scene.frame(min(i, scene.frame_count - 1)),
    )


def red_shift(picture: np.ndarray, frame: np.ndarray, grid: np.ndarray) -> tuple[float, float]:
    """How much redder than the source the picture is (mean R-B gained) over the map's hottest
    cell, and over its cells where the map is zero."""
    height, width = frame.shape[:2]
    gain = (picture[..., 0].astype(float) - picture[..., 2]) - (frame[..., 0].astype(float) - frame[..., 2])
    gh, gw = grid.shape
    i, j = np.unravel_index(int(grid.argmax()), grid.shape)
    hot = gain[i * height // gh : (i + 1) * height // gh, j * width // gw : (j + 1) * width // gw]
    cold = [
        gain[a * height // gh : (a + 1) * height // gh, b * width // gw : (b + 1) * width // gw].mean()
        for a, b in np.argwhere(grid == 0)
    ]
    return float(hot.mean()), float(np.mean(cold)) if cold else 0.0


async def test_pictures_are_drawn_after_the_job_on_the_displayed_frame(tmp_path: Path) -> None:
    video = rotated_scene(tmp_path / "rotated.mp4")
    async with demo_app(tmp_path) as (client, app):
        job_id = await upload(client, video, explain=True)
        url = f"/v1/jobs/{job_id}/explanations/0.png"
        assert_problem(await client.get(url), 409, "job_not_finished")
        worker = app_worker(app)
        assert worker.run_once(), "the analysis"
        results = (await client.get(f"/v1/jobs/{job_id}/results")).json()
        explanations = results["explanations"]
        assert [e["segment"] for e in explanations] == [0, 1]

        pending = await client.get(url)
        assert pending.status_code == 202 and pending.headers["location"] == url
        assert pending.json()["status"] == "queued", "queued by the worker when the job succeeded"
        assert worker.run_once(), "then the pictures, as a follow-up render"
        assert not worker.run_once(), "nothing left"

        for item in explanations:
            got = await client.get(f"/v1/jobs/{job_id}/explanations/{item['segment']}.png")
            assert got.status_code == 200 and got.headers["content-type"] == "image/png"
            assert got.headers["etag"] and "max-age" in got.headers["cache-control"]
            picture = np.asarray(Image.open(io.BytesIO(got.content)).convert("RGB"))
            assert picture.shape == (160 + STRIP, 120, 3), "the displayed frame (turned upright) + strip"
            heat = item["heatmap"]
            when = heat["times"][heat["t"] // 2]
            frame = frames_at(app.state.blobs.path(job_id), [when])[when]
            assert frame.shape == (160, 120, 3)
            grid = np.asarray(heat["data"][heat["t"] // 2])
            hot, cold = red_shift(picture[:160], frame, grid)
            assert hot > 20 and hot > cold + 15, (
                f"heatmap colours where the map is hot: {hot:.1f} vs {cold:.1f}"
            )
        head = await client.head(url)
        assert head.status_code == 200 and head.headers["content-type"] == "image/png"
        picked = await client.get(f"{url}?class_id={explanations[0]['class_id']}")
        assert picked.status_code == 200 and picked.content == (await client.get(url)).content

        # Errors: out of range, a label that segment has no map for, no such job.
        for bad in ("2.png", "-1.png", "zero.png", "00.png"):
            assert_problem(await client.get(f"/v1/jobs/{job_id}/explanations/{bad}"), 404, "not_found")
        other = (explanations[0]["class_id"] + 1) % 7
        assert_problem(await client.get(f"{url}?class_id={other}"), 404, "not_found")
        assert_problem(await client.get("/v1/jobs/nope/explanations/0.png"), 404, "not_found")

        folder = renders_dir(app.state.settings) / f"{job_id}.pictures"
        assert folder.is_dir()
        assert (await client.delete(f"/v1/jobs/{job_id}")).status_code == 204
        assert not folder.exists(), "the pictures go with the job"


async def test_heatmap_overlay_is_a_render_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "scripted.mp4"
    write_scripted_video(
        path, [("rotating", 2.0), ("moving left", 2.0)], fps=30, width=192, height=144, seed=9
    )
    async with demo_app(tmp_path) as (client, app):
        job_id = await upload(client, path, explain=True)
        plain_id = await upload(client, path, explain=False)
        worker = app_worker(app)
        assert worker.run_once() and worker.run_once(), "both analyses"
        base = f"/v1/jobs/{job_id}/annotated.mp4"
        assert_problem(await client.get(f"{base}?overlay=sparkles"), 422, "invalid_request")
        for url in (
            f"/v1/jobs/{plain_id}/annotated.mp4?overlay=heatmap",
            f"/v1/jobs/{plain_id}/explanations/0.png",
        ):
            assert_problem(await client.get(url), 404, "explain_not_requested")

        heat_url = f"{base}?overlay=heatmap"
        while (await client.get(heat_url)).status_code == 202:
            assert worker.run_once(), "each request is drawn by a follow-up render"
        plain = await client.get(base)
        assert plain.status_code == 202, "the plain video is a separate render"
        assert plain.headers["location"] == base
        while (await client.get(base)).status_code == 202:
            assert worker.run_once()
        heated, plain = await client.get(heat_url), await client.get(base)
        assert heated.status_code == plain.status_code == 200
        assert heated.headers["content-type"] == plain.headers["content-type"] == "video/mp4"
        names = sorted(p.name for p in renders_dir(app.state.settings).glob(f"{job_id}.*"))
        assert names == [f"{job_id}.{HEIGHT}p.mp4", f"{job_id}.heatmap.{HEIGHT}p.mp4", f"{job_id}.pictures"]

        explanations = (await client.get(f"/v1/jobs/{job_id}/results")).json()["explanations"]
    with_heat, without = decoded(heated.content), decoded(plain.content)
    assert len(with_heat) == len(without) == 120
    assert with_heat[0].shape == (HEIGHT, 128, 3)
    redder = [redness(a) - redness(b) for a, b in zip(with_heat, without, strict=True)]
    assert np.mean(np.asarray(redder) > 0.2) > 0.9, f"the explained frames are tinted: {redder}"
    for item in explanations:  # the tint follows the map: strongest in its hottest cell
        heat = item["heatmap"]
        when = heat["times"][heat["t"] // 2]
        k = round(when * 30)
        grid = np.asarray(heat["data"][heat["t"] // 2])
        hot, cold = red_shift(with_heat[k][: HEIGHT - 8], without[k][: HEIGHT - 8], grid)
        assert hot > cold + 10, (item["segment"], hot, cold)


def decoded(content: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(content)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]


def redness(frame: np.ndarray) -> float:
    return float((frame[..., 0].astype(float) - frame[..., 2]).mean())


def test_the_cache_lists_and_removes_pictures_with_the_videos(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, MODELS)
    folder = renders_dir(settings)
    (folder / "job-a.pictures").mkdir(parents=True)
    (folder / "job-a.pictures" / "segment-0000-1.png").write_bytes(b"png")
    for name in ("job-a.720p.mp4", "job-a.heatmap.720p.mp4", "job-b.720p.mp4"):
        (folder / name).write_bytes(b"mp4")
    found: dict[str, Any] = {k: sorted(p.name for p in v) for k, v in cached_renders(settings).items()}
    assert found == {
        "job-a": ["job-a.720p.mp4", "job-a.heatmap.720p.mp4", "job-a.pictures"],
        "job-b": ["job-b.720p.mp4"],
    }
    remove_cached(folder / "job-b.720p.mp4")
    delete_cached("job-a", settings)
    assert sorted(p.name for p in folder.iterdir()) == []
