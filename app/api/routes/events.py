"""GET /v1/jobs/{id}/events: Server-Sent Events while a job runs.

The stream polls the job store (so it works on any API replica, whichever worker
runs the job) and sends:

* ``status``: the job JSON, first and whenever the status changes; the stream ends
  after the one carrying a final status (fetch /results then);
* ``progress``: ``{status, progress}`` when the fraction done moves;
* ``segments``: ``{attempt, progress, segments}`` for each batch of segments that
  finished (partial results; ``id`` is the batch id, so ``Last-Event-ID`` resumes);
* ``reset``: ``{attempt}`` when another claim starts over (drop the segments seen so far).

Comment lines keep idle connections alive through proxies.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.api.deps import SettingsDep, StoreDep, TenantDep
from app.api.schemas import PROBLEM_RESPONSES
from app.domain import Job
from app.errors import NotFound
from app.job_json import job_out
from app.store.base import JobStore

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

KEEPALIVE_SECONDS = 15.0
RETRY_MS = 2000


def sse(event: str, data: Any, event_id: int | None = None) -> str:
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, separators=(",", ":"), ensure_ascii=False))
    return "\n".join(lines) + "\n\n"


def _job_json(job: Job) -> dict[str, Any]:
    return job_out(job).model_dump(mode="json")


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses={**PROBLEM_RESPONSES, 200: {"content": {"text/event-stream": {}}}},
    summary="Progress and partial results as Server-Sent Events",
)
async def job_events(
    request: Request,
    job_id: str,
    store: StoreDep,
    settings: SettingsDep,
    tenant: TenantDep,
    last_event_id: Annotated[str | None, Header(max_length=32)] = None,
) -> StreamingResponse:
    job = await run_in_threadpool(store.get_job, job_id, tenant)
    if job is None:
        raise NotFound(f"no job with id {job_id[:64]!r}")
    after = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    stream = _stream(
        request, store, job, tenant, after, settings.events_poll_interval, settings.events_max_seconds
    )
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(
    request: Request,
    store: JobStore,
    job: Job,
    tenant: str,
    after: int,
    poll: float,
    max_seconds: float,
) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    yield sse("status", _job_json(job))
    initial = status = job.status
    progress = job.progress
    run: str | None = None
    started = last_sent = time.monotonic()
    while not job.status.is_final:
        if await request.is_disconnected() or time.monotonic() - started > max_seconds:
            return
        for batch in await run_in_threadpool(store.partial_results, job.id, after):
            if run is not None and batch.run != run:
                yield sse("reset", {"attempt": batch.attempt})
            run, after = batch.run, batch.id
            payload = {"attempt": batch.attempt, "progress": batch.progress, "segments": batch.segments}
            yield sse("segments", payload, event_id=batch.id)
            last_sent = time.monotonic()
        latest = await run_in_threadpool(store.get_job, job.id, tenant)
        if latest is None:  # deleted while we watched
            yield sse("status", {**_job_json(job), "status": "deleted"})
            return
        job = latest
        if job.status != status:
            status = job.status
            if not job.status.is_final:
                yield sse("status", _job_json(job))
                last_sent = time.monotonic()
        if job.progress != progress and not job.status.is_final:
            progress = job.progress
            yield sse("progress", {"status": job.status.value, "progress": job.progress})
            last_sent = time.monotonic()
        if time.monotonic() - last_sent > KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        if not job.status.is_final:
            await asyncio.sleep(poll)
    if job.status != initial:
        yield sse("status", _job_json(job))
