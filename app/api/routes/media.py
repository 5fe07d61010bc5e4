"""A job's video as stored, for the results page player (HTTP Range, so seeking works)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from app.api.deps import BlobsDep, StoreDep, TenantDep
from app.api.schemas import PROBLEM_RESPONSES
from app.errors import NotFound

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


@router.api_route(
    "/{job_id}/video",
    methods=["GET", "HEAD"],
    response_class=FileResponse,
    responses={
        **PROBLEM_RESPONSES,
        200: {"content": {"video/mp4": {}}},
        206: {"description": "A byte range"},
    },
    summary="The uploaded video (supports Range requests)",
)
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
