"""Tables of the job store and the mapping between their rows and domain values.

Only portable column types are used (String, Text, Float, Integer) so that SQLite
and PostgreSQL behave identically: JSON documents are stored as ``Text`` and
(de)serialised here, timestamps are epoch seconds in ``Float`` (double precision
on both), which keeps the injectable clock and the keyset cursor exact.

The Alembic revisions are hand-written; keep them in step with this module
(``tests/contract/test_migrations.py`` compares the two).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from app.domain import Job, JobError, JobStatus, NewJob, VideoInfo

# Deterministic constraint names, so later migrations can refer to them on both dialects.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(128), nullable=False, server_default="default"),
    Column("status", String(16), nullable=False),
    Column("model", String(128), nullable=False),
    Column("options", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("progress", Float, nullable=False, server_default="0"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("max_attempts", Integer, nullable=False),
    Column("lease_token", String(64), nullable=True),
    Column("lease_expires_at", Float, nullable=True),
    Column("worker_id", String(255), nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("video", Text, nullable=True),
    Column("blob_key", String(1024), nullable=True),
    Column("idempotency_key", String(255), nullable=True),
    Column("updated_at", Float, nullable=False),
    # Webhook target and whose secret signs it (API key id, or "tenant:<name>"); revision 0003.
    Column("callback_url", String(2048), nullable=True),
    Column("callback_owner", String(160), nullable=True),
    # SHA-256 of the request that created a job with an Idempotency-Key; revision 0005.
    Column("request_fingerprint", String(64), nullable=True),
    # One job per (tenant, key); NULL keys never collide on either dialect.
    UniqueConstraint("tenant", "idempotency_key"),
    # Newest-first listing and its keyset cursor: ORDER BY created_at DESC, id DESC.
    Index("ix_jobs_created_at_id", "created_at", "id"),
    # Claim (status='queued' ORDER BY created_at, id) and status-filtered listing.
    Index("ix_jobs_status_created_at_id", "status", "created_at", "id"),
    # Per-tenant listing.
    Index("ix_jobs_tenant_created_at_id", "tenant", "created_at", "id"),
    # Per-tenant concurrent-jobs limit (count of queued + running); added in revision 0002.
    Index("ix_jobs_tenant_status", "tenant", "status"),
)

results = Table(
    "results",
    metadata,
    Column("job_id", String(36), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("payload", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)


# API keys: only the SHA-256 of a key is stored. ``prefix`` (the key's first characters,
# not secret) finds the candidate rows; the hash is then compared in constant time.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(128), nullable=False),
    Column("name", String(255), nullable=False, server_default=""),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    UniqueConstraint("key_hash"),
    Index("ix_api_keys_prefix", "prefix"),
    Index("ix_api_keys_tenant", "tenant"),
)

# Fixed-window usage counters shared by every API replica: one row per
# (tenant, metric, window start), bumped with a single INSERT ... ON CONFLICT upsert.
usage_counters = Table(
    "usage_counters",
    metadata,
    Column("tenant", String(128), primary_key=True),
    Column("metric", String(32), primary_key=True),
    Column("window_start", BigInteger, primary_key=True),
    Column("count", BigInteger, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_usage_counters_expires_at", "expires_at"),
)


# Revision 0003: what users plug into (partial results, webhooks, annotated renders).

# Segments finished while a job runs, for the events stream; the final results replace
# them (rows go when the job ends). ``id`` orders them and is the SSE event id.
partial_results = Table(
    "partial_results",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(36), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("lease_token", String(64), nullable=False),
    Column("progress", Float, nullable=False),
    Column("segments", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_partial_results_job_id_id", "job_id", "id"),
    sqlite_autoincrement=True,  # ids never reused after deletes (they are SSE resume points)
)

# Per API key (or per tenant with auth off): the webhook signing secret and default URL.
webhook_owners = Table(
    "webhook_owners",
    metadata,
    Column("owner", String(160), primary_key=True),
    Column("secret", String(128), nullable=False),
    Column("default_url", String(2048), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# The webhook outbox: one row per (job, final event), retried with backoff by workers.
# ``body`` is rendered when the row is queued; ``job_id`` is no foreign key (revision 0004),
# so deleting the job leaves a pending delivery to be sent (settled ones go with the job).
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("job_id", String(36), nullable=False),
    Column("event", String(32), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("owner", String(160), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Float, nullable=False),
    Column("lock_token", String(64), nullable=True),
    Column("locked_until", Float, nullable=True),
    Column("body", Text, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("delivered_at", Float, nullable=True),
    UniqueConstraint("job_id", "event"),
    Index("ix_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", String(36), ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Index("ix_delivery_attempts_delivery_id_attempt", "delivery_id", "attempt"),
    sqlite_autoincrement=True,
)

# Annotated-video renders: a follow-up job per analysed job, claimed by workers with a lease.
renders = Table(
    "renders",
    metadata,
    Column("job_id", String(36), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("lease_token", String(64), nullable=True),
    Column("lease_expires_at", Float, nullable=True),
    Column("file_key", String(255), nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    Index("ix_renders_status_created_at", "status", "created_at"),
)


def dump_json(value: Any) -> str:
    """Serialise a JSON document for a Text column (compact, stable key order)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def load_json(text: str) -> Any:
    return json.loads(text)


def new_job_values(new: NewJob, now: float) -> dict[str, Any]:
    """Column values for inserting ``new`` as a fresh queued job."""
    return {
        "id": new.id,
        "tenant": new.tenant,
        "status": JobStatus.QUEUED.value,
        "model": new.model,
        "options": dump_json(new.options),
        "created_at": now,
        "started_at": None,
        "finished_at": None,
        "progress": 0.0,
        "attempts": 0,
        "max_attempts": new.max_attempts,
        "lease_token": None,
        "lease_expires_at": None,
        "worker_id": None,
        "error_code": None,
        "error_message": None,
        "video": dump_json(new.video.to_dict()),
        "blob_key": new.blob_key,
        "idempotency_key": new.idempotency_key,
        "updated_at": now,
        "callback_url": new.callback_url,
        "callback_owner": new.callback_owner,
    }


def job_from_row(row: Mapping[Any, Any]) -> Job:
    """Build the domain ``Job`` from a ``jobs`` row mapping (``row._mapping``)."""
    error = None
    if row["error_code"] is not None:
        error = JobError(code=row["error_code"], message=row["error_message"] or "")
    video = VideoInfo.from_dict(load_json(row["video"])) if row["video"] is not None else None
    return Job(
        id=row["id"],
        status=JobStatus(row["status"]),
        model=row["model"],
        options=load_json(row["options"]),
        created_at=float(row["created_at"]),
        started_at=_opt_float(row["started_at"]),
        finished_at=_opt_float(row["finished_at"]),
        progress=float(row["progress"]),
        attempts=int(row["attempts"]),
        max_attempts=int(row["max_attempts"]),
        error=error,
        video=video,
        blob_key=row["blob_key"],
        tenant=row["tenant"],
        idempotency_key=row["idempotency_key"],
        worker_id=row["worker_id"],
        lease_expires_at=_opt_float(row["lease_expires_at"]),
        callback_url=row["callback_url"],
    )


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
