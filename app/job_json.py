"""The job's JSON shape: what ``GET /v1/jobs/{id}`` answers, what the events stream sends
as a status, and what a webhook POSTs (the same document plus ``event`` and
``delivery_id``). A domain fact shared by the API, the webhooks and the store, so it
lives below all three; these field names are the public contract."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from app.domain import Job, JobStatus


class ErrorOut(BaseModel):
    code: str
    message: str


class VideoOut(BaseModel):
    filename: str
    size_bytes: int
    duration: float | None
    width: int
    height: int
    fps: float | None
    codec: str
    rotation: int


class JobOut(BaseModel):
    id: str
    status: JobStatus
    model: str
    options: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: float = Field(ge=0, le=1)
    attempts: int
    error: ErrorOut | None
    video: VideoOut | None
    callback_url: str | None = None
    source_url: str | None = None


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=UTC)


def job_out(job: Job) -> JobOut:
    video = None
    if job.video is not None:
        video = VideoOut(**{k: v for k, v in job.video.to_dict().items() if k in VideoOut.model_fields})
    return JobOut(
        id=job.id,
        status=job.status,
        model=job.model,
        options=job.options,
        created_at=datetime.fromtimestamp(job.created_at, tz=UTC),
        started_at=_ts(job.started_at),
        finished_at=_ts(job.finished_at),
        progress=min(max(job.progress, 0.0), 1.0),
        attempts=job.attempts,
        error=ErrorOut(code=job.error.code, message=job.error.message) if job.error else None,
        video=video,
        callback_url=job.callback_url,
        source_url=job.video.source_url if job.video else None,
    )


def webhook_body(job: Job, event: str, delivery_id: str) -> str:
    """The body of delivery ``delivery_id`` announcing ``event`` for ``job`` (compact JSON).
    Rendered once, when the delivery is queued (in the transaction that ends the job), so
    every retry sends the same bytes and a delivery outlives the job row."""
    document = job_out(job).model_dump(mode="json")
    document["event"] = event
    document["delivery_id"] = delivery_id
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)
