"""A job's videos: as stored (for the results page player) and annotated (labels and a
timeline drawn on, rendered by a worker on first request, then cached). Both support
HTTP Range, so players can seek."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from app.api.deps import BlobsDep, SettingsDep, StoreDep, TenantDep
from app.api.schemas import PROBLEM_RESPONSES, problem_response
from app.domain import JobStatus, RenderStatus
from app.errors import JobNotFinished, NotFound, RenderFailed
from app.store.renders import render_key, renders_dir

if TYPE_CHECKING:
    from app.store.renders import RenderStore

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


class RenderPending(BaseModel):
    job_id: str
    status: str = Field(description="queued or running; GET again after Retry-After")
    attempts: int


ANNOTATED_ROUTE: dict[str, Any] = {
    "response_class": FileResponse,
    "responses": {
        **PROBLEM_RESPONSES,
        200: {"content": {"video/mp4": {}}, "description": "The annotated video (Range supported)"},
        202: {
            "model": RenderPending,
            "description": "Rendering was requested or is under way; poll Location after Retry-After",
        },
        409: problem_response(
            "Not succeeded (job_not_finished), or rendering failed (render_failed: ?retry=1)"
        ),
    },
    "summary": "The video with labels and a timeline drawn on it (rendered on first request, cached)",
}


@router.head(
    "/{job_id}/annotated.mp4",
    operation_id="head_annotated_v1_jobs__job_id__annotated_mp4_head",
    **ANNOTATED_ROUTE,
)
@router.get("/{job_id}/annotated.mp4", **ANNOTATED_ROUTE)
def get_annotated(
    request: Request, job_id: str, store: StoreDep, settings: SettingsDep, tenant: TenantDep
) -> Response:
    """HEAD does what GET does (it too requests a render), so a client may poll with HEAD
    until 200 and then fetch; its answers carry GET's status and headers, without a body."""
    job = store.get_job(job_id, tenant)
    if job is None:
        raise NotFound(f"no job with id {job_id[:64]!r}")
    if job.status is not JobStatus.SUCCEEDED:
        raise JobNotFinished(
            f"job {job.id} is {job.status.value}; it can be annotated once it has succeeded",
            job_status=job.status.value,
        )
    renders: RenderStore = request.app.state.renders
    key = render_key(job.id, settings)
    render = renders.get(job.id)
    if render is not None and render.status is RenderStatus.SUCCEEDED and render.file_key == key:
        path = renders_dir(settings) / key
        if path.is_file():
            return FileResponse(
                path, media_type="video/mp4", headers={"Cache-Control": "private, max-age=3600"}
            )
    retry = request.query_params.get("retry") == "1"
    if render is not None and render.status is RenderStatus.FAILED and not retry:
        raise RenderFailed(f"{render.error}; GET with ?retry=1 to queue it again")
    if render is None or render.status in (RenderStatus.SUCCEEDED, RenderStatus.FAILED):
        if not job.blob_key:
            raise NotFound(f"job {job.id} has no stored video any more (deleted or expired)")
        render = renders.request(job.id)
        request.app.state.job_submitted.set()  # wake an idle embedded worker
    body = RenderPending(job_id=job.id, status=render.status.value, attempts=render.attempts)
    # On HEAD the server (uvicorn, or httpx's ASGITransport in tests) sends these headers, no body.
    return JSONResponse(
        body.model_dump(),
        status_code=202,
        headers={"Retry-After": "2", "Location": f"/v1/jobs/{job.id}/annotated.mp4"},
    )
