"""A job's videos: as stored (for the results page player) and annotated (labels and a
timeline drawn on, with ``overlay=heatmap`` also each explained segment's map; rendered by a
worker on first request, then cached). Both support HTTP Range, so players can seek."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse

from app.api.deps import BlobsDep, SettingsDep, StoreDep, TenantDep
from app.api.render_cache import cached_or_requested, render_route
from app.api.routes.explanations import explained
from app.api.schemas import PROBLEM_RESPONSES
from app.domain import JobStatus, RenderVariant
from app.errors import JobNotFinished, NotFound

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def media_type_for(container: str) -> str:
    """Browsers play mp4/mov, webm/matroska and ogg; anything else is offered as bytes."""
    names = set(container.split(","))
    if names & {"mp4", "mov", "m4v"}:
        return "video/mp4"
    if names & {"webm", "matroska"}:
        return "video/webm"
    if "ogg" in names:
        return "video/ogg"
    return "application/octet-stream"


VIDEO_ROUTE: dict[str, Any] = {
    "response_class": FileResponse,
    "responses": {
        **PROBLEM_RESPONSES,
        200: {"content": {"video/mp4": {}}},
        206: {"description": "A byte range"},
    },
    "summary": "The uploaded video (supports Range requests)",
}


@router.head("/{job_id}/video", operation_id="head_video_v1_jobs__job_id__video_head", **VIDEO_ROUTE)
@router.get("/{job_id}/video", **VIDEO_ROUTE)
def get_video(job_id: str, store: StoreDep, blobs: BlobsDep, tenant: TenantDep) -> FileResponse:
    job = store.get_job(job_id, tenant)
    if job is None:
        raise NotFound(f"no job with id {job_id[:64]!r}")
    path = blobs.path(job.blob_key) if job.blob_key else None
    if path is None or not path.is_file():
        raise NotFound(f"job {job.id} has no stored video (deleted or expired)")
    container = job.video.container if job.video else ""
    return FileResponse(
        path, media_type=media_type_for(container), headers={"Cache-Control": "private, max-age=3600"}
    )


class Overlay(StrEnum):
    """What ``annotated.mp4`` may also draw: ``heatmap``, each explained segment's map (``explain``)."""

    HEATMAP = "heatmap"


ANNOTATED_ROUTE = render_route(
    "video/mp4",
    ok="The annotated video (Range supported)",
    pending="Rendering was requested or is under way; poll Location after Retry-After",
    not_found="Unknown job (not_found); overlay=heatmap on a job run without explain"
    " (explain_not_requested) or with no explanations (not_found)",
    conflict="Not succeeded (job_not_finished), or rendering failed (render_failed: ?retry=1)",
    summary="The video with labels and a timeline drawn on it (rendered on first request, cached)",
)


@router.head(
    "/{job_id}/annotated.mp4",
    operation_id="head_annotated_v1_jobs__job_id__annotated_mp4_head",
    **ANNOTATED_ROUTE,
)
@router.get("/{job_id}/annotated.mp4", **ANNOTATED_ROUTE)
def get_annotated(
    request: Request,
    job_id: str,
    store: StoreDep,
    settings: SettingsDep,
    tenant: TenantDep,
    overlay: Annotated[
        Overlay | None, Query(description="heatmap: also blend each explained segment's map on")
    ] = None,
) -> Response:
    """HEAD does what GET does (it too requests a render), so a client may poll with HEAD
    until 200 and then fetch; its answers carry GET's status and headers, without a body.
    ``overlay=heatmap`` is a render of its own, cached beside the plain one."""
    job = store.get_job(job_id, tenant)
    if job is None:
        raise NotFound(f"no job with id {job_id[:64]!r}")
    if overlay is Overlay.HEATMAP:
        explained(job, store)
    if job.status is not JobStatus.SUCCEEDED:
        raise JobNotFinished(
            f"job {job.id} is {job.status.value}; it can be annotated once it has succeeded",
            job_status=job.status.value,
        )
    variant = RenderVariant.ANNOTATED
    location = f"/v1/jobs/{job.id}/annotated.mp4"
    if overlay is Overlay.HEATMAP:
        variant, location = RenderVariant.HEATMAP, f"{location}?overlay=heatmap"
    cached = cached_or_requested(request, job, settings, variant, location)
    if not isinstance(cached, Path):
        return cached
    return FileResponse(cached, media_type="video/mp4", headers={"Cache-Control": "private, max-age=3600"})
