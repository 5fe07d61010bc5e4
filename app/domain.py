"""Domain values shared by the API, the store and the worker (no I/O here)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)


class RenderStatus(StrEnum):
    """An annotated-video render: queued, leased by a worker (running), then settled."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class RenderVariant(StrEnum):
    """What a render draws from a finished job: the annotated video, the same with each
    explained segment's heatmap blended on (``overlay=heatmap``), or the explanation pictures."""

    ANNOTATED = "annotated"
    HEATMAP = "heatmap"
    PICTURES = "pictures"


class DeliveryStatus(StrEnum):
    """A webhook delivery: pending (sent, and retried, until it settles), delivered or failed."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True)
class VideoInfo:
    """What the upload probe learned about a video."""

    filename: str
    size_bytes: int
    duration: float | None
    width: int
    height: int
    fps: float | None
    codec: str
    rotation: int
    container: str = ""
    source_url: str | None = None
    """The URL the video was fetched from (a ``source_url`` job); None for an upload."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["source_url"] is None:
            del data["source_url"]  # an upload's video reads as it always has
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VideoInfo:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass(frozen=True)
class JobError:
    code: str
    message: str


@dataclass(frozen=True)
class NewJob:
    """Everything needed to insert a job row (the blob is already stored)."""

    id: str
    model: str
    options: dict[str, Any]
    video: VideoInfo
    blob_key: str
    max_attempts: int
    tenant: str = "default"
    idempotency_key: str | None = None
    callback_url: str | None = None
    """Webhook target for the final state; ``callback_owner``'s secret signs it."""
    callback_owner: str | None = None


@dataclass(frozen=True)
class Job:
    id: str
    status: JobStatus
    model: str
    options: dict[str, Any]
    created_at: float
    started_at: float | None
    finished_at: float | None
    progress: float
    attempts: int
    max_attempts: int
    error: JobError | None
    video: VideoInfo | None
    blob_key: str | None
    tenant: str = "default"
    idempotency_key: str | None = None
    worker_id: str | None = None
    lease_expires_at: float | None = None
    callback_url: str | None = None


@dataclass(frozen=True)
class Lease:
    """A worker's claim on a job; ``token`` fences every later change."""

    job: Job
    token: str
    worker_id: str
    expires_at: float


@dataclass(frozen=True)
class JobPage:
    items: list[Job] = field(default_factory=list)
    next_cursor: str | None = None


@dataclass(frozen=True)
class PartialSegments:
    """Segments a running job finished in one batch (``id`` orders batches of a job)."""

    id: int
    attempt: int
    run: str
    """Identifies the claim that produced it (a retry or a released job's next claim differs)."""
    progress: float
    segments: list[dict[str, Any]]
