"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.api.deps import BlobsDep, StoreDep
from app.api.problems import problem
from app.api.schemas import RETRY_AFTER_HEADER, problem_response
from app.errors import ServiceError

router = APIRouter(tags=["health"])


@router.head("/healthz", include_in_schema=False)
@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.head("/readyz", include_in_schema=False)
@router.get(
    "/readyz",
    summary="Database reachable, storage writable, migrations current",
    responses={503: problem_response("Not ready (code not_ready); `checks` says why", RETRY_AFTER_HEADER)},
)
def readyz(request: Request, store: StoreDep, blobs: BlobsDep) -> JSONResponse:
    checks: dict[str, Any] = {}
    failures: list[str] = []
    if getattr(request.app.state, "draining", False):
        failures.append("draining: the process is shutting down")
    for name, check in (("database", store.ping), ("storage", blobs.check_writable)):
        try:
            check()
            checks[name] = "ok"
        except ServiceError as exc:
            checks[name] = exc.detail
            failures.append(f"{name}: {exc.detail}")
    if checks.get("database") == "ok":
        current = store.migrations_current()
        checks["migrations"] = "ok" if current else "not at head; run `python -m app migrate`"
        if not current:
            failures.append("migrations: not at head")
    if failures:
        return problem(
            503, "not_ready", "Not ready", "; ".join(failures), {"Retry-After": "5"}, checks=checks
        )
    return JSONResponse({"status": "ready", "checks": checks})
