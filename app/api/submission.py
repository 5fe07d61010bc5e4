"""Submitting a job: every step between an upload's first byte and its queued row.

``POST /v1/jobs`` only maps the result to HTTP. The steps, in order:

1. A known ``Idempotency-Key`` of the tenant: the body is read and hashed, nothing stored,
   and the key's job returned if the request is the same (file bytes and form fields, see
   ``ReceivedUpload.fingerprint``; a ``source_url`` and the fields, see
   ``SourceRequest.fingerprint``, the URL not fetched), else ``IdempotencyKeyReused``. The
   look-up comes first, so a database outage still fails before the body is read.
2. The body streams into a blob writer (``receive_upload``), hashed on the way. A body that
   names a ``source_url`` instead (a form, or JSON: ``read_field_body``) has its fields
   checked first, then the video is fetched into the blob writer (``fetch_source``).
3. The upload's bytes are charged to the tenant, the form is parsed, the callback resolved
   and the file probed in the sandbox. Any failure (a disconnect included) aborts the
   writer, so nothing is stored; success commits the blob.
4. The row is inserted. If the database went away mid-insert the row may or may not exist,
   so the blob stays (the worker's orphan sweep removes it if no job refers to it); any
   other failure deletes it (a full disk too: the row was not written). A concurrent request
   with the same key that inserted first wins: its job is returned if it was the same
   request (else ``IdempotencyKeyReused``) and this blob deleted.

Collaborators are read from ``app.state`` per request, as the route dependencies do:
tests and operators may swap them (settings, prober) on a running app.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State
from starlette.requests import Request

from app.analysis.limits import MediaLimits
from app.api.admission import require_detection_inputs, require_segment_limit, require_weights
from app.api.field_body import FIELD_BODY_TYPES, read_field_body
from app.api.forms import FORM_FIELDS, parse_job_form
from app.api.ratelimit import charge_upload
from app.api.routes.deliveries import resolve_callback
from app.api.source_fetch import fetch_source
from app.api.upload import Discard, ReceivedUpload, SinkT, SourceRequest, receive_upload
from app.domain import Job, NewJob, VideoInfo
from app.errors import InsufficientStorage, NotFound, Unavailable
from app.options import JobOptions

if TYPE_CHECKING:
    from app.analysis.catalog import Catalog
    from app.blobs import BlobStore, BlobWriter
    from app.metrics import Metrics
    from app.settings import Settings
    from app.store.base import JobStore

log = logging.getLogger("app.api.routes.jobs")
"""The route's logger name, kept from before these steps moved here: log filters rely on it."""


@dataclass(frozen=True)
class _Form:
    """The checked fields of a submission: model, options and webhook."""

    model: str
    options: JobOptions
    callback_url: str | None
    callback_owner: str | None


@dataclass(frozen=True)
class Submission:
    job: Job
    created: bool
    """False: the tenant's Idempotency-Key already named this job (a replay, or a lost race)."""


class VideoProber(Protocol):
    """The upload probe on ``app.state.prober``: FFmpeg runs in its sandboxed child, never here."""

    def probe_video(
        self, path: Path, *, filename: str, allowed_formats: Iterable[str], limits: MediaLimits
    ) -> VideoInfo: ...


async def submit(request: Request, tenant: str, idempotency_key: str | None) -> Submission:
    """Steps 1-4 above. Raises the coded error of the step that refused the upload."""
    store: JobStore = request.app.state.store
    settings: Settings = request.app.state.settings
    if idempotency_key:
        existing = await run_in_threadpool(store.get_job_by_idempotency_key, tenant, idempotency_key)
        if existing is not None:
            return await _replay(request, settings, store, tenant, idempotency_key)
    elif not settings.auth_enabled:
        # Fail fast while the database is away, before a body of up to max_upload_bytes is read
        # and probed only to be refused (with auth on, the API-key look-up already did the same;
        # with a key, the look-up above does).
        await run_in_threadpool(store.ping)
    job_id = str(uuid.uuid4())
    blobs: BlobStore = request.app.state.blobs
    body = await _read(request, settings, lambda: blobs.writer(job_id))
    form, source_url = None, None
    if isinstance(body, SourceRequest):
        form, source_url = await _form(request, settings, body.fields), body.url
        upload = await fetch_source(body, lambda: blobs.writer(job_id), settings)
    else:
        upload = body
    new = await _describe(request, settings, upload, job_id, tenant, idempotency_key, form, source_url)
    fingerprint = body.fingerprint if idempotency_key else None
    job, created = await _insert(store, blobs, new, fingerprint)
    if created:
        _announce(request.app.state, job, upload, tenant)
    return Submission(job, created)


async def _replay(request: Request, settings: Settings, store: JobStore, tenant: str, key: str) -> Submission:
    """Step 1: the body is only read and hashed (stored nowhere, so a replay also works on
    a full disk), then compared with the request that created the key's job."""
    body = await _read(request, settings, Discard)
    job = await run_in_threadpool(store.get_job_by_idempotency_key, tenant, key, fingerprint=body.fingerprint)
    if job is None:
        raise NotFound(
            "the job of this Idempotency-Key was deleted while the request was read; send it again"
        )
    return Submission(job, created=False)


async def _read(
    request: Request, settings: Settings, open_sink: Callable[[], SinkT]
) -> ReceivedUpload[SinkT] | SourceRequest:
    """The body by its type: a multipart upload (or form naming a source_url), or the
    fields of a JSON or URL-encoded body naming a source_url."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in FIELD_BODY_TYPES:
        return await read_field_body(request, content_type, settings.upload_read_timeout_seconds)
    return await receive_upload(
        request,
        open_sink,
        max_bytes=settings.max_upload_bytes,
        allowed_fields=FORM_FIELDS,
        read_timeout=settings.upload_read_timeout_seconds,
    )


async def _form(request: Request, settings: Settings, fields: dict[str, str]) -> _Form:
    """The model (its weights present), options and webhook of the fields; or the coded error."""
    catalog: Catalog = request.app.state.catalog
    model, options = parse_job_form(fields, settings.default_model, catalog)
    require_weights(catalog, model, settings)
    require_detection_inputs(catalog, model, options, settings)
    callback_url, callback_owner = await resolve_callback(request, fields.get("callback_url"))
    return _Form(model, options, callback_url, callback_owner)


async def _describe(
    request: Request,
    settings: Settings,
    upload: ReceivedUpload[BlobWriter],
    job_id: str,
    tenant: str,
    idempotency_key: str | None,
    form: _Form | None = None,
    source_url: str | None = None,
) -> NewJob:
    """Step 3: the job to insert, its blob committed; or the coded error, its blob aborted.
    ``form``: the fields already checked (a source_url's, before the fetch)."""
    catalog: Catalog = request.app.state.catalog
    prober: VideoProber = request.app.state.prober
    try:
        await charge_upload(request, tenant, upload.writer.size)
        form = form or await _form(request, settings, upload.fields)
        video = await run_in_threadpool(
            prober.probe_video,
            upload.writer.temp_path,
            filename=upload.filename,
            allowed_formats=settings.allowed_format_list,
            limits=MediaLimits.from_settings(settings),
        )
        require_segment_limit(catalog, form.model, form.options, video, settings)
        upload.writer.commit()
    except BaseException:
        upload.writer.abort()
        raise
    return NewJob(
        id=job_id,
        model=form.model,
        options=form.options.model_dump(),
        video=replace(video, source_url=source_url) if source_url else video,
        blob_key=job_id,
        max_attempts=settings.max_attempts,
        tenant=tenant,
        idempotency_key=idempotency_key,
        callback_url=form.callback_url,
        callback_owner=form.callback_owner,
    )


async def _insert(
    store: JobStore, blobs: BlobStore, new: NewJob, fingerprint: str | None
) -> tuple[Job, bool]:
    """Step 4: (job, created), with the blob kept or deleted by the rules above."""
    try:
        job, created = await run_in_threadpool(store.create_job, new, fingerprint=fingerprint)
    except InsufficientStorage:
        blobs.delete(new.blob_key)
        raise
    except Unavailable:
        raise  # the row may have been committed: the blob stays for it (or for the orphan sweep)
    except BaseException:
        blobs.delete(new.blob_key)
        raise
    if not created:
        blobs.delete(new.blob_key)
    return job, created


def _announce(state: State, job: Job, upload: ReceivedUpload[BlobWriter], tenant: str) -> None:
    """Wake the embedded worker, count the job and its bytes, log it."""
    state.job_submitted.set()
    metrics: Metrics = state.metrics
    metrics.jobs_submitted.inc()
    metrics.upload_bytes.inc(upload.writer.size)
    log.info(
        "job accepted: %s, %d bytes, model %s",
        upload.filename or "(no name)",
        upload.writer.size,
        job.model,
        extra={"job_id": job.id, "tenant": tenant},
    )
