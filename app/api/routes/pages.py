"""The results page: static HTML/JS/CSS shipped in the package (no build step at run time).

``/`` uploads and lists jobs, ``/jobs/{id}`` shows one job, ``/favicon.ico`` is what browsers
ask for on every page. The pages are public; the data behind them comes from the API with
the caller's key (see ``static/common.js``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from app.errors import NotFound

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
_TEXT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
_MEDIA_TYPES = {
    **{suffix: f"{media}; charset=utf-8" for suffix, media in _TEXT_TYPES.items()},
    ".ico": "image/vnd.microsoft.icon",
}
# Pages change with the service version; let browsers revalidate instead of guessing.
_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}

router = APIRouter(include_in_schema=False)


def _file(name: str) -> FileResponse:
    path = STATIC_DIR / name
    media_type = _MEDIA_TYPES.get(path.suffix)
    if media_type is None or path.parent != STATIC_DIR or not path.is_file():
        raise NotFound(f"no page asset {name[:64]!r}")
    return FileResponse(path, media_type=media_type, headers=_HEADERS)


@router.get("/")
def index() -> FileResponse:
    return _file("index.html")


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    return _file("favicon.ico")


@router.get("/jobs/{job_id}")
def job_page(job_id: str) -> FileResponse:
    return _file("job.html")


@router.get("/redoc")
def redoc() -> RedirectResponse:
    """ReDoc is not served (offline it would still fetch its logo from a CDN): old links land
    on Swagger UI."""
    return RedirectResponse("/docs", status_code=308)


@router.get("/static/{name}")
def asset(name: str) -> FileResponse:
    return _file(name)
