"""``GET /metrics``: Prometheus exposition of this replica's instruments and the store's figures."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from app.api.deps import StoreDep
from app.metrics import CONTENT_TYPE, Metrics

router = APIRouter(tags=["health"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request, store: StoreDep) -> Response:
    instruments: Metrics = request.app.state.metrics
    body = await run_in_threadpool(instruments.render, store)
    return Response(content=body, media_type=CONTENT_TYPE)
