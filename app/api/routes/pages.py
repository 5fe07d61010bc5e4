"""The results page: static HTML/JS/CSS shipped in the package (no build step at run time).

``/`` uploads and lists jobs, ``/jobs/{id}`` shows one job. The pages are public; the
data behind them comes from the API with the caller's key (see ``static/common.js``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from app.errors import NotFound

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
_MEDIA_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
# Pages change with the service version; let browsers revalidate instead of guessing.
_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}

router = APIRouter(include_in_schema=False)


def _file(name: str) -> FileResponse:
    path = STATIC_DIR / name
    media_type = _MEDIA_TYPES.get(path.suffix)
    if media_type is None or path.parent != STATIC_DIR or not path.is_file():
        raise NotFound(f"no page asset {name[:64]!r}")
    return FileResponse(path, media_type=f"{media_type}; charset=utf-8", headers=_HEADERS)


@router.get("/")
def index() -> FileResponse:
    return _file("index.html")


@router.get("/jobs/{job_id}")
def job_page(job_id: str) -> FileResponse:
    return _file("job.html")


@router.get("/static/{name}")
def asset(name: str) -> FileResponse:
    return _file(name)
