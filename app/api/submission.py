"""Submitting a job: every step between an upload's first byte and its queued row.

``POST /v1/jobs`` only maps the result to HTTP. The steps, in order:

1. A known ``Idempotency-Key`` of the tenant: the body is read and hashed, nothing stored,
   and the key's job returned if the request is the same (file bytes and form fields, see
   ``ReceivedUpload.fingerprint``), else ``IdempotencyKeyReused``. The look-up comes first,
   so a database outage still fails before the body is read.
2. The body streams into a blob writer (``receive_upload``), hashed on the way.
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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State
from starlette.requests import Request

from app.analysis.limits import MediaLimits
from app.api.admission import require_segment_limit, require_weights
from app.api.forms import FORM_FIELDS, parse_job_form
from app.api.ratelimit import charge_upload
from app.api.routes.deliveries import resolve_callback
from app.api.upload import Discard, ReceivedUpload, receive_upload
from app.domain import Job, NewJob, VideoInfo
from app.errors import InsufficientStorage, NotFound, Unavailable

if TYPE_CHECKING:
    from app.analysis.catalog import Catalog
    from app.blobs import BlobStore, BlobWriter
    from app.metrics import Metrics
    from app.settings import Settings
    from app.store.base import JobStore

log = logging.getLogger("app.api.routes.jobs")
"""The route's logger name, kept from before these steps moved here: log filters rely on it."""


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
    upload = await receive_upload(
        request,
        lambda: blobs.writer(job_id),
        max_bytes=settings.max_upload_bytes,
        allowed_fields=FORM_FIELDS,
        read_timeout=settings.upload_read_timeout_seconds,
    )
    new = await _describe(request, settings, upload, job_id, tenant, idempotency_key)
    fingerprint = upload.fingerprint if idempotency_key else None
    job, created = await _insert(store, blobs, new, fingerprint)
    if created:
        _announce(request.app.state, job, upload, tenant)
    return Submission(job, created)


async def _replay(request: Request, settings: Settings, store: JobStore, tenant: str, key: str) -> Submission:
    """Step 1: the body is only read and hashed (stored nowhere, so a replay also works on
    a full disk), then compared with the request that created the key's job."""
    upload = await receive_upload(
        request,
        Discard,
        max_bytes=settings.max_upload_bytes,
        allowed_fields=FORM_FIELDS,
        read_timeout=settings.upload_read_timeout_seconds,
    )
    job = await run_in_threadpool(
        store.get_job_by_idempotency_key, tenant, key, fingerprint=upload.fingerprint
    )
    if job is None:
        raise NotFound(
            "the job of this Idempotency-Key was deleted while the request was read; send it again"
        )
    return Submission(job, created=False)


async def _describe(
    request: Request,
    settings: Settings,
    upload: ReceivedUpload[BlobWriter],
    job_id: str,
    tenant: str,
    idempotency_key: str | None,
) -> NewJob:
    """Step 3: the job to insert, its blob committed; or the coded error, its blob aborted."""
    catalog: Catalog = request.app.state.catalog
    prober: VideoProber = request.app.state.prober
    try:
        await charge_upload(request, tenant, upload.writer.size)
        model, options = parse_job_form(upload.fields, settings.default_model, catalog)
        require_weights(catalog, model, settings)
        callback_url, callback_owner = await resolve_callback(request, upload.fields.get("callback_url"))
        video = await run_in_threadpool(
            prober.probe_video,
            upload.writer.temp_path,
            filename=upload.filename,
            allowed_formats=settings.allowed_format_list,
            limits=MediaLimits.from_settings(settings),
        )
        require_segment_limit(catalog, model, options, video, settings)
        upload.writer.commit()
    except BaseException:
        upload.writer.abort()
        raise
    return NewJob(
        id=job_id,
        model=model,
        options=options.model_dump(),
        video=video,
        blob_key=job_id,
        max_attempts=settings.max_attempts,
        tenant=tenant,
        idempotency_key=idempotency_key,
        callback_url=callback_url,
        callback_owner=callback_owner,
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
