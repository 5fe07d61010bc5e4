"""A job's renders as the API serves them (annotated videos, explanation pictures): the cached
file when a worker has drawn it, else a render requested from the workers' queue (202 with
``Retry-After`` and ``Location`` to poll), or the failed render's problem (409 ``render_failed``;
``?retry=1`` queues it again).

A job has one render row; its ``file_key`` names the variant asked for (``render_key``), so the
variants are rendered one after another and each is cached in its own file: a variant's cache
is its file being there (renders publish by rename), whatever the row says now.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from app.api.schemas import PROBLEM_RESPONSES, problem_response
from app.domain import Job, RenderStatus, RenderVariant
from app.errors import NotFound, RenderFailed
from app.store.renders import render_key, renders_dir, variant_of

if TYPE_CHECKING:
    from app.settings import Settings
    from app.store.renders import RenderStore


class RenderPending(BaseModel):
    job_id: str
    status: str = Field(description="queued or running; GET again after Retry-After")
    attempts: int


def render_route(
    media_type: str, *, ok: str, pending: str, not_found: str, conflict: str, summary: str
) -> dict[str, Any]:
    """The OpenAPI keywords of a route served by :func:`cached_or_requested`: the file (200),
    the render requested or under way (202), and the route's own 404 and 409 problems."""
    return {
        "response_class": FileResponse,
        "responses": {
            **PROBLEM_RESPONSES,
            200: {"content": {media_type: {}}, "description": ok},
            202: {"model": RenderPending, "description": pending},
            404: problem_response(not_found),
            409: problem_response(conflict),
        },
        "summary": summary,
    }


def cached_or_requested(
    request: Request, job: Job, settings: Settings, variant: RenderVariant, location: str
) -> Path | JSONResponse:
    """The cached render of ``variant`` (a file, or the pictures' folder), or the 202 answer
    after requesting it. A render of another variant that failed is no reason to refuse this one."""
    key = render_key(job.id, settings, variant)
    path = renders_dir(settings) / key
    if path.exists():
        return path
    renders: RenderStore = request.app.state.renders
    render = renders.get(job.id)
    failed_here = (
        render is not None
        and render.status is RenderStatus.FAILED
        and variant_of(job.id, render.file_key, settings) is variant
    )
    if failed_here and request.query_params.get("retry") != "1":
        assert render is not None
        raise RenderFailed(f"{render.error}; GET with ?retry=1 to queue it again")
    if render is None or render.status in (RenderStatus.SUCCEEDED, RenderStatus.FAILED):
        if not job.blob_key:
            raise NotFound(f"job {job.id} has no stored video any more (deleted or expired)")
        render = renders.request(job.id, key)
        request.app.state.job_submitted.set()  # wake an idle embedded worker
    body = RenderPending(job_id=job.id, status=render.status.value, attempts=render.attempts)
    # On HEAD the server (uvicorn, or httpx's ASGITransport in tests) sends these headers, no body.
    return JSONResponse(
        body.model_dump(), status_code=202, headers={"Retry-After": "2", "Location": location}
    )
