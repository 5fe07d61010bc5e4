"""Stream a multipart/form-data upload straight into blob storage.

FastAPI's ``UploadFile`` parses the whole body before the handler runs, so a
size limit could only be checked afterwards. Here the body is parsed as it
arrives: the file part goes to a sink (a ``BlobWriter``, or ``Discard`` for a body that
is only fingerprinted) chunk by chunk and is hashed on the way, the limit is enforced
while streaming (also for chunked bodies without Content-Length), and any failure
removes the partial file.

A form may name a ``source_url`` instead of sending a file part: the body then holds fields
only (a ``SourceRequest``; the video is fetched by ``app.api.source_fetch``). Both at once
is refused as soon as the second arrives.

A body that stalls for ``upload_read_timeout_seconds`` is ``UploadTimeout`` (408, and the
connection is closed). A full disk is ``InsufficientStorage`` (507), answered at once: the
server (uvicorn) drops the rest of the body, so the client reads the answer, not a reset.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import unicodedata
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from app.api.forms import SOURCE_FIELD
from app.errors import BadUpload, InvalidOptions, UnsupportedMedia, UploadTimeout, UploadTooLarge

FILE_FIELD = "file"
MAX_FIELD_BYTES = 64 * 1024
MAX_PART_HEADER_BYTES = 64 * 1024  # long (even hostile) file names stay metadata, not a 400
MULTIPART_SLACK = 1024 * 1024  # part headers, boundaries and text fields around the file
BOTH_SOURCES = "give either a 'file' part or a 'source_url', not both"


class FileSink(Protocol):
    """Where the file part's bytes go (``app.blobs.BlobWriter`` is one)."""

    @property
    def size(self) -> int: ...

    def write(self, data: bytes) -> None: ...

    def abort(self) -> None: ...


class Discard:
    """A sink that counts the bytes and keeps none: a replayed request is only compared."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)

    def abort(self) -> None:
        return None


SinkT = TypeVar("SinkT", bound=FileSink)


@dataclass
class ReceivedUpload(Generic[SinkT]):
    fields: dict[str, str]
    writer: SinkT
    filename: str
    file_sha256: str

    @property
    def fingerprint(self) -> str:
        """What makes two submissions the same request (an Idempotency-Key's replay): the
        file's bytes and the form fields as sent (model, options, callback); not the file name."""
        document = {"file_sha256": self.file_sha256, "fields": self.fields}
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class SourceRequest:
    """A submission without a file: its fields, ``source_url`` (not empty) among them."""

    fields: dict[str, str]

    @property
    def url(self) -> str:
        return self.fields[SOURCE_FIELD].strip()

    @property
    def fingerprint(self) -> str:
        """What makes two submissions the same request: the URL and the fields as sent (the
        video behind the URL is not fetched to compare a replay)."""
        document = {"source_url": self.url, "fields": self.fields}
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def has_source(fields: dict[str, str]) -> bool:
    """A ``source_url`` was given (an empty field, as HTML forms send, counts as none)."""
    return bool(fields.get(SOURCE_FIELD, "").strip())


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)


def safe_filename(raw: str | None) -> str:
    """The client's file name for display only: no path, no control characters, bounded."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    name = name.lstrip(".") or "upload"
    return name[:255]


class _Collector(Generic[SinkT]):
    """python-multipart callbacks: headers → part metadata, data → sink (hashed) or field buffer."""

    def __init__(self, open_sink: Callable[[], SinkT], max_bytes: int, allowed_fields: set[str]) -> None:
        self.open_sink, self.max_bytes, self.allowed = open_sink, max_bytes, allowed_fields
        self.fields: dict[str, str] = {}
        self.writer: SinkT | None = None
        self.file_hash = hashlib.sha256()
        self.filename = ""
        self._part = _Part()
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}
        self._in_file = False

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._header_name.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._header_value.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._part = _Part()
        self._headers = {}
        self._in_file = False

    def _header_end(self) -> None:
        self._headers[bytes(self._header_name).decode("latin-1").lower()] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        disposition, params = parse_options_header(self._headers.get("content-disposition", b""))
        if disposition != b"form-data" or b"name" not in params:
            raise BadUpload("every multipart part needs Content-Disposition: form-data with a name")
        self._part.name = params[b"name"].decode("utf-8", "replace")
        if b"filename" in params:
            self._part.filename = params[b"filename"].decode("utf-8", "replace")
        if self._part.name == FILE_FIELD:
            if has_source(self.fields):
                raise InvalidOptions(BOTH_SOURCES)
            if self.writer is not None:
                raise InvalidOptions("more than one 'file' part; upload exactly one video per job")
            self.writer = self.open_sink()
            self.filename = safe_filename(self._part.filename)
            self._in_file = True
        elif self._part.name not in self.allowed:
            raise InvalidOptions(
                f"unknown form field {self._part.name[:64]!r}; allowed: file, {', '.join(sorted(self.allowed))}"
            )
        elif self._part.name in self.fields:
            raise InvalidOptions(f"form field {self._part.name!r} given twice")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            assert self.writer is not None
            if self.writer.size + (end - start) > self.max_bytes:
                raise UploadTooLarge(f"the file is larger than the limit of {self.max_bytes} bytes")
            self.writer.write(data[start:end])
            self.file_hash.update(data[start:end])
            return
        if len(self._part.data) + (end - start) > MAX_FIELD_BYTES:
            raise InvalidOptions(f"form field {self._part.name!r} is too long")
        self._part.data.extend(data[start:end])

    def _part_end(self) -> None:
        if self._in_file:
            return
        try:
            self.fields[self._part.name] = self._part.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidOptions(f"form field {self._part.name!r} is not UTF-8 text") from exc
        if self.writer is not None and has_source(self.fields):
            raise InvalidOptions(BOTH_SOURCES)


async def body_chunks(request: Request, max_bytes: int, read_timeout: float) -> AsyncIterator[bytes]:
    """The body's chunks: a stall past ``read_timeout`` is ``UploadTimeout``, a body over
    ``max_bytes`` (and the multipart slack) ``UploadTooLarge``."""
    stream, received = request.stream(), 0
    while True:
        try:
            chunk = await asyncio.wait_for(anext(stream), read_timeout)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise UploadTimeout(
                f"no part of the body arrived for {read_timeout:g} seconds; the upload was dropped"
            ) from None
        received += len(chunk)
        if received > max_bytes + MULTIPART_SLACK:
            raise UploadTooLarge(f"the body is larger than the limit of {max_bytes} bytes")
        yield chunk


async def receive_upload(
    request: Request,
    open_sink: Callable[[], SinkT],
    *,
    max_bytes: int,
    allowed_fields: set[str],
    read_timeout: float,
) -> ReceivedUpload[SinkT] | SourceRequest:
    """Parse the request body; the caller owns (commits or aborts) the returned writer."""
    content_type, params = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise BadUpload(
            "send the video as multipart/form-data with a 'file' part (curl -F file=@video.mp4), "
            "or its URL as source_url (a form or a JSON body)"
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes + MULTIPART_SLACK:
        raise UploadTooLarge(f"the body ({declared} bytes) is larger than the limit of {max_bytes} bytes")

    collector = _Collector(open_sink, max_bytes, allowed_fields)
    parser = MultipartParser(
        params[b"boundary"],
        collector.callbacks(),  # type: ignore[arg-type]
        max_header_size=MAX_PART_HEADER_BYTES,
    )
    try:
        async for chunk in body_chunks(request, max_bytes, read_timeout):
            parser.write(chunk)
        parser.finalize()
        if collector.writer is None and has_source(collector.fields):
            return SourceRequest(collector.fields)
        if collector.writer is None:
            raise InvalidOptions(
                "the form has no 'file' part; send the video as -F file=@video.mp4 or its URL as source_url"
            )
        if collector.writer.size == 0:
            raise UnsupportedMedia("the uploaded file is empty")
    except (MultipartParseError, ValueError) as exc:
        _abort(collector)
        raise BadUpload(f"malformed multipart body: {exc}") from exc
    except (ClientDisconnect, Exception):
        _abort(collector)
        raise
    return ReceivedUpload(
        fields=collector.fields,
        writer=collector.writer,
        filename=collector.filename,
        file_sha256=collector.file_hash.hexdigest(),
    )


def _abort(collector: _Collector[SinkT]) -> None:
    if collector.writer is not None:
        collector.writer.abort()
