"""The one place where exceptions become HTTP responses: RFC 9457 problem+json.

Every error body has the same shape: ``{type, title, status, detail, code}`` (plus
optional extension members such as ``errors`` or ``job_status``).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from app import errors
from app.api.allowed_methods import allowed_methods
from app.api.schemas import Problem

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

# Most specific class first; looked up along the exception's MRO.
STATUS_BY_ERROR: dict[type[errors.ServiceError], int] = {
    errors.NotFound: 404,
    errors.JobNotFinished: 409,
    errors.RenderFailed: 409,
    errors.UnknownModel: 422,
    errors.InvalidOptions: 422,
    errors.WeightsMissing: 422,
    errors.UploadTooLarge: 413,
    errors.VideoTooLong: 413,
    errors.FrameTooLarge: 413,
    errors.TooManyStreams: 415,
    errors.MediaLimitExceeded: 422,
    errors.ProbeFailed: 422,
    errors.UnsupportedMedia: 415,
    errors.Unauthorized: 401,
    errors.RateLimited: 429,
    errors.BadUpload: 400,
    errors.UploadTimeout: 408,
    errors.IdempotencyKeyReused: 422,
    errors.SourceUnreachable: 422,
    errors.RequestError: 400,
    errors.InsufficientStorage: 507,
    errors.Unavailable: 503,
}

_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "upload_too_large"}


def problem(
    status: int, code: str, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {"type": f"urn:video-analysis:problem:{code}", "title": title, "status": status, "detail": detail}
    body["code"] = code
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def status_for(exc: errors.ServiceError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.ServiceError)
    status = status_for(exc)
    headers = {"Retry-After": "5"} if status == 503 else {}
    headers.update(getattr(exc, "headers", None) or {})  # WWW-Authenticate, Retry-After
    if status >= 500:
        log.error("request failed: %s", exc, extra={"code": exc.code})
    extra = {k: v for k, v in exc.extra.items() if isinstance(v, str | int | float | bool | list | dict)}
    return problem(status, exc.code, exc.title, exc.detail, headers or None, **extra)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"loc": [str(p) for p in err.get("loc", ())], "msg": str(err.get("msg", ""))} for err in exc.errors()
    ]
    summary = "; ".join(f"{'.'.join(d['loc'])}: {d['msg']}" for d in details) or "invalid request"
    return problem(422, "invalid_request", "Invalid request", summary, errors=details)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    title = code.replace("_", " ").capitalize()
    detail = exc.detail if isinstance(exc.detail, str) else title
    headers = dict(exc.headers or {})
    if exc.status_code == 405:  # Starlette names only the first matching route's methods
        headers["Allow"] = ", ".join(allowed_methods(request.app.router.routes, request.scope))
    return problem(exc.status_code, code, title, detail, headers)


async def _client_disconnected(request: Request, exc: Exception) -> JSONResponse:
    """The client went away mid-request (the upload's partial file is already removed);
    nobody reads this answer, and it is no server error."""
    log.info("client disconnected during %s %s", request.method, request.url.path)
    return problem(400, "client_disconnected", "Client disconnected", "the client closed the connection")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "internal_error", "Internal error", "an unexpected error occurred")


def document_problem(app: FastAPI) -> None:
    """Add ``Problem`` (and what it references) to the OpenAPI components, where the error
    responses' application/problem+json ``$ref`` points."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(schema.pop("$defs", {}))
            schemas["Problem"] = schema
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    document_problem(app)
    app.add_exception_handler(errors.ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_disconnected)
    app.add_exception_handler(Exception, _unexpected)
