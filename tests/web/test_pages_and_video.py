"""The page routes and the video endpoint the player streams from (HTTP Range)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import Service, assert_problem, submit

pytestmark = pytest.mark.anyio


async def test_pages_and_assets_are_served(service: Service) -> None:
    index = await service.client.get("/")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert "/static/index.js" in index.text
    job = await service.client.get("/jobs/anything")
    assert job.status_code == 200 and "/static/job.js" in job.text
    for name, media in (("common.js", "text/javascript"), ("style.css", "text/css")):
        asset = await service.client.get(f"/static/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(media)
    assert_problem(await service.client.get("/static/missing.js"), 404, "not_found")
    assert_problem(await service.client.get("/static/..%2Fpages.py"), 404, "not_found")


async def test_video_supports_range_requests(service: Service, short_clip: Path) -> None:
    job_id = (await submit(service, short_clip)).json()["id"]
    size = short_clip.stat().st_size
    full = await service.client.get(f"/v1/jobs/{job_id}/video")
    assert full.status_code == 200 and full.content == short_clip.read_bytes()
    assert full.headers["content-type"] == "video/mp4" and full.headers["accept-ranges"] == "bytes"
    part = await service.client.get(f"/v1/jobs/{job_id}/video", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == short_clip.read_bytes()[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{size}"
    head = await service.client.head(f"/v1/jobs/{job_id}/video")
    assert head.status_code == 200 and int(head.headers["content-length"]) == size and not head.content
    assert_problem(await service.client.get("/v1/jobs/nope/video"), 404, "not_found")
    await service.client.delete(f"/v1/jobs/{job_id}")
    assert_problem(await service.client.get(f"/v1/jobs/{job_id}/video"), 404, "not_found")
