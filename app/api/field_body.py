"""A submission sent as fields only (``source_url`` and the options): a JSON object or an
URL-encoded form, read into the same text fields a multipart form gives.

One parser downstream (``parse_job_form``) then sees one shape whatever the body's type: a
JSON number or boolean becomes its JSON text (``2``, ``0.5``, ``true``), a list or object its
compact JSON text (``[[0, 4], [10, 12.5]]``), ``null`` an empty field (not given). The body is
small, so it is bounded and read whole, with the upload's stall timeout.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from app.api.forms import FORM_FIELDS, SOURCE_FIELD
from app.api.upload import BOTH_SOURCES, FILE_FIELD, MAX_FIELD_BYTES, SourceRequest, body_chunks, has_source
from app.errors import BadUpload, InvalidOptions

JSON = "application/json"
URL_ENCODED = "application/x-www-form-urlencoded"
FIELD_BODY_TYPES = (JSON, URL_ENCODED)
MAX_BODY_BYTES = 4 * MAX_FIELD_BYTES


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _from_json(raw: bytes) -> list[tuple[str, str]]:
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadUpload(f"the JSON body is malformed: {exc}") from exc
    if not isinstance(document, dict):
        raise BadUpload('the JSON body must be an object: {"source_url": "https://...", ...}')
    return [(str(name), _text(value)) for name, value in document.items()]


def _from_form(raw: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(raw))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadUpload(f"the URL-encoded body is malformed: {exc}") from exc


def _fields(pairs: list[tuple[str, str]]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name == FILE_FIELD:
            raise InvalidOptions(f"{BOTH_SOURCES}; a file is sent as multipart/form-data")
        if name not in FORM_FIELDS:
            raise InvalidOptions(f"unknown field {name[:64]!r}; allowed: {', '.join(sorted(FORM_FIELDS))}")
        if name in fields:
            raise InvalidOptions(f"field {name!r} given twice")
        if len(value) > MAX_FIELD_BYTES:
            raise InvalidOptions(f"field {name!r} is too long")
        fields[name] = value
    return fields


async def read_field_body(request: Request, content_type: str, read_timeout: float) -> SourceRequest:
    """The fields of a JSON (``content_type`` = JSON) or URL-encoded body; ``source_url``
    is required, since such a body cannot carry the file itself."""
    raw = bytearray()
    async for chunk in body_chunks(request, MAX_BODY_BYTES, read_timeout):
        raw.extend(chunk)
        if len(raw) > MAX_BODY_BYTES:
            raise BadUpload(f"a {content_type} body is limited to {MAX_BODY_BYTES} bytes")
    fields = _fields(_from_json(bytes(raw)) if content_type == JSON else _from_form(bytes(raw)))
    if not has_source(fields):
        raise InvalidOptions(
            f"a {content_type} body needs {SOURCE_FIELD}; upload a file as multipart/form-data instead"
        )
    return SourceRequest(fields)
