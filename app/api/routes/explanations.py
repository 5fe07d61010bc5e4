"""``GET /v1/jobs/{id}/explanations/{segment}.png``: why a segment got its label, as a picture.

The frame shown at the middle of the segment's explained clip (upright, full size) with the
map blended on and the frame weights in a strip below. The API draws nothing (it imports
neither av nor torch): a worker draws every picture of a job in its sandboxed render child,
queued right after the job succeeds with ``explain`` and again on a request that finds none
(``render_cache``), then the pictures are served from the renders folder.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import FileResponse

from app.api.deps import SettingsDep, StoreDep, TenantDep
from app.api.render_cache import cached_or_requested, render_route
from app.domain import Job, JobStatus, RenderVariant
from app.errors import JobNotFinished, NotFound
from app.explain_errors import ExplainNotRequested
from app.store.base import JobStore
from app.store.renders import picture_name

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def explained(job: Job, store: JobStore) -> list[dict[str, Any]]:
    """The job's explanations: ``explain_not_requested`` when it ran without ``explain`` (at
    any status), ``job_not_finished`` before it has succeeded, ``not_found`` when it has none
    (its model has no explanation method)."""
    if not job.options.get("explain"):
        raise ExplainNotRequested(f"job {job.id} was not run with explain=true: it has no explanations")
    results = store.get_results(job.id) if job.status is JobStatus.SUCCEEDED else None
    if results is None:
        raise JobNotFinished(
            f"job {job.id} is {job.status.value}; its explanations exist once it has succeeded",
            job_status=job.status.value,
        )
    items: list[dict[str, Any]] = results.get("explanations") or []
    if not items:
        raise NotFound(f"job {job.id} has no explanations (its model has no explanation method)")
    return items


PICTURE_ROUTE = render_route(
    "image/png",
    ok="The picture (cached by the worker that drew it)",
    pending="The job's pictures are being drawn; poll Location after Retry-After",
    not_found="Unknown job or no explanation for that segment (not_found), or the job ran without"
    " explain=true (explain_not_requested)",
    conflict="Not succeeded (job_not_finished), or drawing failed (render_failed: ?retry=1)",
    summary="A segment's explanation: its middle frame with the heatmap and the frame weights",
)


@router.head(
    "/{job_id}/explanations/{segment}.png",
    operation_id="head_explanation_v1_jobs__job_id__explanations__segment__png_head",
    **PICTURE_ROUTE,
)
@router.get("/{job_id}/explanations/{segment}.png", **PICTURE_ROUTE)
def get_explanation_picture(
    request: Request,
    job_id: str,
    segment: Annotated[
        str, Path(max_length=20, description="The segment's index (results' segments[].index)")
    ],
    store: StoreDep,
    settings: SettingsDep,
    tenant: TenantDep,
    class_id: Annotated[
        int | None,
        Query(
            ge=0, description="Which explained label (a multi-label model's); default: the segment's first"
        ),
    ] = None,
) -> Response:
    """The segment's first explanation (its top label), or ``class_id``'s; HEAD as GET. The
    segment is read after the job is found: any segment of someone else's job is 404, as for
    an unknown job."""
    job = store.get_job(job_id, tenant)
    if job is None:
        raise NotFound(f"no job with id {job_id[:64]!r}")
    items = [e for e in explained(job, store) if str(e["segment"]) == segment]
    if class_id is not None:
        items = [e for e in items if e["class_id"] == class_id]
    if not items:
        which = "" if class_id is None else f" and class id {class_id}"
        raise NotFound(f"job {job.id} has no explanation for segment {segment!r}{which}")
    cached = cached_or_requested(request, job, settings, RenderVariant.PICTURES, str(request.url.path))
    if isinstance(cached, Response):
        return cached
    path = cached / picture_name(int(items[0]["segment"]), int(items[0]["class_id"]))
    if not path.is_file():
        raise NotFound(f"job {job.id} has no picture for segment {segment} (its map is empty)")
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})
