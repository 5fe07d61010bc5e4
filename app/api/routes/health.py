"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.api.deps import BlobsDep, StoreDep
from app.api.problems import problem
from app.errors import ServiceError

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Database reachable, storage writable, migrations current")
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
