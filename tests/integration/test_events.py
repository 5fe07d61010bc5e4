"""GET /v1/jobs/{id}/events: progress and partial segments as they land, then the final status."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Service, assert_problem, submit
from tests.media import write_video

pytestmark = pytest.mark.anyio


def parse_sse(text: str) -> list[tuple[str, Any, str | None]]:
    """(event, data, id) for every event of a finished stream."""
    events = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":") or ":" not in line:
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"]), fields.get("id")))
    return events


def segment(i: int) -> dict[str, Any]:
    return {
        "index": i,
        "start": float(i),
        "end": i + 1.0,
        "labels": [{"label": "a", "class_id": 0, "score": 1.0}],
    }


@pytest.mark.settings(events_poll_interval=0.02)
async def test_stream_shows_batches_then_final_status(service: Service, short_clip: Path) -> None:
    job_id = (await submit(service, short_clip)).json()["id"]
    stream = asyncio.create_task(service.client.get(f"/v1/jobs/{job_id}/events"))
    await asyncio.sleep(0.2)
    lease = service.store.claim("w", 30)
    assert lease is not None
    service.store.append_partial(lease, [segment(0), segment(1)], 0.5)
    service.store.report_progress(lease, 0.5)
    await asyncio.sleep(0.2)
    service.store.append_partial(lease, [segment(2)], 0.75)
    await asyncio.sleep(0.2)
    service.store.complete(lease, {"segments": [segment(i) for i in range(3)], "summary": [], "runs": []})
    response = await asyncio.wait_for(stream, 10)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    names = [name for name, _, _ in events]
    assert names[0] == "status" and events[0][1]["status"] == "queued"
    assert names[-1] == "status" and events[-1][1]["status"] == "succeeded"
    batches = [data for name, data, _ in events if name == "segments"]
    assert [[s["index"] for s in b["segments"]] for b in batches] == [[0, 1], [2]]
    assert batches[0]["attempt"] == 1 and batches[1]["progress"] == 0.75
    assert "running" in [data["status"] for name, data, _ in events if name == "status"]
    assert 0.5 in [data["progress"] for name, data, _ in events if name == "progress"]
    assert service.store.partial_results(job_id) == [], "partial rows go when the job ends"


@pytest.mark.settings(events_poll_interval=0.02)
async def test_last_event_id_resumes_and_a_retry_resets(service: Service, short_clip: Path) -> None:
    job_id = (await submit(service, short_clip)).json()["id"]
    lease = service.store.claim("w", 30)
    assert lease is not None
    service.store.append_partial(lease, [segment(0)], 0.3)
    service.store.append_partial(lease, [segment(1)], 0.6)
    first_id = service.store.partial_results(job_id)[0].id
    stream = asyncio.create_task(
        service.client.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": str(first_id)})
    )
    await asyncio.sleep(0.2)
    service.store.release(lease)  # a new attempt starts over: earlier partials are dropped on its first write
    second = service.store.claim("w2", 30)
    assert second is not None
    service.store.append_partial(second, [segment(0)], 0.4)
    await asyncio.sleep(0.2)
    service.store.cancel(job_id)
    events = parse_sse((await asyncio.wait_for(stream, 10)).text)
    seen = [(name, data.get("attempt")) for name, data, _ in events if name in ("segments", "reset")]
    assert seen == [("segments", 1), ("reset", 1), ("segments", 1)]
    assert events[-1][1]["status"] == "canceled"
    assert [len(service.store.partial_results(job_id))] == [0]


async def test_finished_or_unknown_jobs(service: Service, short_clip: Path) -> None:
    assert_problem(await service.client.get("/v1/jobs/nope/events"), 404, "not_found")
    job_id = (await submit(service, short_clip)).json()["id"]
    await service.client.delete(f"/v1/jobs/{job_id}")
    events = parse_sse((await service.client.get(f"/v1/jobs/{job_id}/events")).text)
    assert [(name, data["status"]) for name, data, _ in events] == [("status", "canceled")]


@pytest.mark.settings(events_poll_interval=0.01, batch_size=1)
async def test_real_worker_streams_the_final_segments_early(service: Service, tmp_path: Path) -> None:
    clip = write_video(tmp_path / "eight.mp4", seconds=8.0, fps=15, width=96, height=64)
    job_id = (await submit(service, clip, segment_seconds=0.5, top_k=2)).json()["id"]
    stream = asyncio.create_task(service.client.get(f"/v1/jobs/{job_id}/events"))
    await asyncio.sleep(0.1)
    thread = threading.Thread(target=service.new_worker().run_once)
    thread.start()
    response = await asyncio.wait_for(stream, 120)
    thread.join()
    events = parse_sse(response.text)
    assert events[-1][1]["status"] == "succeeded"
    streamed = {s["index"]: s for name, data, _ in events if name == "segments" for s in data["segments"]}
    assert streamed, "no partial segments were streamed"
    final = (await service.client.get(f"/v1/jobs/{job_id}/results")).json()["segments"]
    for index, early in streamed.items():
        assert early == final[index], "a partial segment differs from the final one"
    progress = [data["progress"] for name, data, _ in events if name == "progress"]
    assert progress == sorted(progress) and len(progress) >= 2
