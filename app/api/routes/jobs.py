"""/v1/jobs: submit, inspect, list, fetch results, cancel/delete."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BeforeValidator, Field

from app.api import formats
from app.api.deps import BlobsDep, SettingsDep, StoreDep, TenantDep
from app.api.ratelimit import check_submission_quota
from app.api.schemas import (
    PROBLEM_RESPONSES,
    RESULTS_RESPONSES,
    RETRY_AFTER_HEADER,
    JobList,
    ResultsOut,
    problem_response,
)
from app.api.submission import submit
from app.domain import Job, JobStatus
from app.errors import InsufficientStorage, InvalidOptions, JobNotFinished, NotFound
from app.job_json import JobOut, job_out
from app.options import MAX_RANGES, MIN_SEGMENT_SECONDS
from app.store.renders import delete_cached

if TYPE_CHECKING:
    from app.blobs import BlobStore
    from app.settings import Settings
    from app.store.base import JobStore

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

_DISK_FULL_RESPONSE: dict[int | str, dict[str, Any]] = {
    507: problem_response("The disk is full (code insufficient_storage)", RETRY_AFTER_HEADER)
}
_UPLOAD_TIMEOUT_RESPONSE: dict[int | str, dict[str, Any]] = {
    408: problem_response("The body stalled past upload_read_timeout_seconds (code upload_timeout)")
}

_OPTION_PROPERTIES: dict[str, Any] = {
    "model": {"type": "string", "description": "Catalog name (GET /v1/models)."},
    "segment_seconds": {"type": "number", "minimum": MIN_SEGMENT_SECONDS, "maximum": 3600},
    "stride_seconds": {"type": "number", "minimum": MIN_SEGMENT_SECONDS, "maximum": 3600},
    "segments": {
        "description": "Chosen time ranges, each one segment: a JSON list of [start, end] seconds "
        "(at most 1,000; inside the video; overlaps allowed), as a list in a JSON body or its JSON "
        "text in a form field. Not with segment_seconds, stride_seconds, start or end.",
        "oneOf": [
            {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_RANGES,
                "items": {
                    "type": "array",
                    "items": {"type": "number", "minimum": 0},
                    "minItems": 2,
                    "maxItems": 2,
                },
            },
            {"type": "string", "example": "[[0, 4], [10, 12.5]]"},
        ],
    },
    "clips_per_segment": {
        "type": "integer",
        "minimum": 1,
        "maximum": 10,
        "description": "Default 1; with segmentation=shots, each segment's length over the model's clip.",
    },
    "segmentation": {
        "type": "string",
        "enum": ["fixed", "shots"],
        "default": "fixed",
        "description": "fixed windows, or one segment per shot (implies detect_shots; not with "
        "segments, segment_seconds or stride_seconds).",
    },
    "max_segment_seconds": {
        "type": "number",
        "minimum": MIN_SEGMENT_SECONDS,
        "maximum": 3600,
        "default": 10,
        "description": "With segmentation=shots: a longer shot is split into equal parts.",
    },
    "crops": {"type": "integer", "enum": [1, 3]},
    "start": {"type": "number", "minimum": 0},
    "end": {"type": "number", "exclusiveMinimum": 0},
    "top_k": {"type": "integer", "minimum": 1, "maximum": 50},
    "min_score": {"type": "number", "minimum": 0, "maximum": 1},
    "callback_url": {
        "type": "string",
        "format": "uri",
        "description": "Webhook for the final state (default: your key's; empty: none).",
    },
}
_SOURCE_URL: dict[str, Any] = {
    "type": "string",
    "format": "uri",
    "maxLength": 2048,
    "description": "Fetch the video from this http(s) URL instead of uploading it (not with `file`). "
    "Public addresses only (unless allowed by source_url_allowed_networks), at most 3 redirects; "
    "the upload's size, format and probe limits apply.",
}
_BY_URL: dict[str, Any] = {
    "schema": {
        "type": "object",
        "required": ["source_url"],
        "properties": {"source_url": _SOURCE_URL, **_OPTION_PROPERTIES},
    }
}
_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "description": "Exactly one of `file` and `source_url`.",
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "The video."},
                        "source_url": _SOURCE_URL,
                        **_OPTION_PROPERTIES,
                    },
                }
            },
            "application/json": _BY_URL,
            "application/x-www-form-urlencoded": _BY_URL,
        },
    }
}


def _blank_is_none(value: Any) -> Any:
    return None if value == "" else value


Blank = Literal[""]
"""An empty query value, documented as accepted: it means the parameter's default
(``_blank_is_none`` turns it into None before validation, so this member never holds)."""


def _get(store: StoreDep, job_id: str, tenant: str) -> Job:
    job = store.get_job(job_id, tenant)
    if job is None:
        raise NotFound(f"no job with id {job_id[:64]!r}")
    return job


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    openapi_extra=_UPLOAD_BODY,
    dependencies=[Depends(check_submission_quota)],
    responses={
        200: {"model": JobOut, "description": "Idempotent replay"},
        **PROBLEM_RESPONSES,
        **_UPLOAD_TIMEOUT_RESPONSE,
        **_DISK_FULL_RESPONSE,
    },
    summary="Upload a video (or name its URL) and queue its analysis",
)
async def submit_job(
    request: Request,
    response: Response,
    tenant: TenantDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JobOut:
    # No docstring: it would become the operation's description in the OpenAPI document.
    submission = await submit(request, tenant, idempotency_key)
    if not submission.created:
        response.status_code = 200  # an idempotent replay: the job the key already named
    response.headers["Location"] = f"/v1/jobs/{submission.job.id}"
    return job_out(submission.job)


@router.get("", response_model=JobList, responses=PROBLEM_RESPONSES, summary="List jobs, newest first")
def list_jobs(
    store: StoreDep,
    tenant: TenantDep,
    status: Annotated[JobStatus | Blank | None, BeforeValidator(_blank_is_none)] = None,
    limit: Annotated[
        Annotated[int, Field(ge=1, le=200)] | Blank | None, BeforeValidator(_blank_is_none)
    ] = 50,
    cursor: Annotated[Annotated[str, Field(max_length=200)] | None, BeforeValidator(_blank_is_none)] = None,
) -> JobList:
    """``?status=&limit=&cursor=`` with empty values means the same as leaving them out
    (an empty ``limit`` arrives as None: the documented default 50 then applies)."""
    try:
        page = store.list_jobs(tenant=tenant, status=status or None, limit=limit or 50, cursor=cursor)
    except ValueError as exc:
        raise InvalidOptions("invalid cursor; use the next_cursor of a previous page") from exc
    return JobList(items=[job_out(j) for j in page.items], next_cursor=page.next_cursor)


@router.get("/{job_id}", response_model=JobOut, responses=PROBLEM_RESPONSES, summary="A job's status")
def get_job(job_id: str, store: StoreDep, tenant: TenantDep) -> JobOut:
    return job_out(_get(store, job_id, tenant))


@router.get(
    "/{job_id}/results",
    response_model=ResultsOut,
    responses={**PROBLEM_RESPONSES, **RESULTS_RESPONSES},
    summary="Per-segment results (json, jsonl, csv, vtt, srt)",
)
def get_results(
    request: Request,
    response: Response,
    job_id: str,
    store: StoreDep,
    tenant: TenantDep,
    format: Annotated[str | None, Query(max_length=16, description="json|jsonl|csv|vtt|srt")] = None,
    limit: Annotated[int | None, Query(ge=1, le=10_000, description="segments per page")] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Any:
    fmt = formats.negotiate(format, request.headers.get("accept"))
    job = _get(store, job_id, tenant)
    payload = store.get_results(job.id) if job.status is JobStatus.SUCCEEDED else None
    if payload is None:
        raise JobNotFinished(
            f"job {job.id} is {job.status.value}; results exist once it has succeeded",
            job_status=job.status.value,
        )
    video = {**(payload.get("video") or {}), **(job.video.to_dict() if job.video else {})}
    full = {**payload, "job_id": job.id, "model": job.model, "video": video}
    return formats.respond(full, fmt, limit=limit, cursor=cursor, job_id=job.id, response=response)


@router.delete(
    "/{job_id}",
    status_code=204,
    responses={**PROBLEM_RESPONSES, **_DISK_FULL_RESPONSE},
    summary="Cancel a job and delete its data",
)
def delete_job(
    job_id: str, store: StoreDep, blobs: BlobsDep, settings: SettingsDep, tenant: TenantDep
) -> Response:
    """Queued/running jobs become ``canceled`` (the worker stops at its next batch);
    finished jobs are removed entirely. The stored video and results go in both cases.

    The rows go first, so a failure leaves the job whole. But when the database's disk is
    full (it needs a little space even to delete), the files go first, freeing that space
    (one disk by default), and the rows are tried once more: deleting is how space is freed."""
    job = _get(store, job_id, tenant)
    try:
        _delete_rows(store, job, tenant)
    except InsufficientStorage:
        _delete_files(job, blobs, settings)
        _delete_rows(store, job, tenant)
    _delete_files(job, blobs, settings)
    return Response(status_code=204)


def _delete_rows(store: JobStore, job: Job, tenant: str) -> None:
    if not job.status.is_final:
        # The job may finish between the read above and the cancel; cancel then returns it
        # unchanged, and it is removed like any finished job instead of losing only its results.
        canceled = store.cancel(job.id, tenant)
        if canceled is not None and canceled.status is JobStatus.CANCELED:
            store.delete_results(job.id)
        else:
            store.delete_job(job.id, tenant)
    else:
        store.delete_job(job.id, tenant)


def _delete_files(job: Job, blobs: BlobStore, settings: Settings) -> None:
    if job.blob_key:
        blobs.delete(job.blob_key)
    delete_cached(job.id, settings)
