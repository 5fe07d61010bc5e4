"""The client's and the janitor's side of the job store: submit, read, list, cancel and
delete jobs; fail jobs whose last allowed lease lapsed; retention and counts.

Writes here are not fenced by a lease: a cancel or a delete locks the job row
(``FOR UPDATE`` on PostgreSQL, the write lock on SQLite) and ends any lease, so the
worker that held it loses its next fenced write (``app.store.job_leases``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from app.domain import Job, JobPage, JobStatus, NewJob, PartialSegments
from app.errors import IdempotencyKeyReused
from app.store import followups
from app.store.cursor import decode_cursor, encode_cursor
from app.store.engine import SqlTables
from app.store.job_leases import ATTEMPTS_EXHAUSTED, JOB_QUEUE, notify_queued
from app.store.schema import job_from_row, jobs, load_json, new_job_values, partial_results
from app.store.schema import results as results_table

_ACTIVE = [JobStatus.QUEUED.value, JobStatus.RUNNING.value]
_FINAL = [s.value for s in JobStatus if s.is_final]


def _chunks(items: list[str], size: int = 500) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _owned(job_id: str, tenant: str | None) -> ColumnElement[bool]:
    if tenant is None:
        return jobs.c.id == job_id
    return and_(jobs.c.id == job_id, jobs.c.tenant == tenant)


class JobRecords(SqlTables):
    """Everything of ``JobStore`` but the worker's claim and fenced writes."""

    # -- submission and queries

    def create_job(self, new: NewJob, *, fingerprint: str | None = None) -> tuple[Job, bool]:
        if new.idempotency_key is not None:
            existing = self.get_job_by_idempotency_key(
                new.tenant, new.idempotency_key, fingerprint=fingerprint
            )
            if existing is not None:
                return existing, False
        values = {**new_job_values(new, self._clock()), "request_fingerprint": fingerprint}
        try:
            with self._write() as conn:
                stmt = insert(jobs).values(values).returning(*jobs.c)
                row = conn.execute(stmt).one()
                notify_queued(conn)
        except IntegrityError:
            # Lost a race with a concurrent submission carrying the same key.
            if new.idempotency_key is None:
                raise
            existing = self.get_job_by_idempotency_key(
                new.tenant, new.idempotency_key, fingerprint=fingerprint
            )
            if existing is None:
                raise
            return existing, False
        return job_from_row(row._mapping), True

    def get_job(self, job_id: str, tenant: str | None = None) -> Job | None:
        with self._read() as conn:
            row = conn.execute(select(jobs).where(_owned(job_id, tenant))).first()
        return None if row is None else job_from_row(row._mapping)

    def get_job_by_idempotency_key(
        self, tenant: str, key: str, *, fingerprint: str | None = None
    ) -> Job | None:
        stmt = select(jobs).where(jobs.c.tenant == tenant, jobs.c.idempotency_key == key)
        with self._read() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            return None
        first = row.request_fingerprint
        if fingerprint is not None and first is not None and first != fingerprint:
            raise IdempotencyKeyReused(
                f"the Idempotency-Key {key[:64]!r} was first sent with a different request (file, model"
                " or options); send a new key for a new request, or the first request again to get its job"
            )
        return job_from_row(row._mapping)

    def list_jobs(
        self,
        *,
        tenant: str | None = None,
        status: JobStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        limit = max(1, limit)
        stmt = select(jobs)
        if tenant is not None:
            stmt = stmt.where(jobs.c.tenant == tenant)
        if status is not None:
            stmt = stmt.where(jobs.c.status == JobStatus(status).value)
        if cursor is not None:
            created_at, job_id = decode_cursor(cursor)
            stmt = stmt.where(tuple_(jobs.c.created_at, jobs.c.id) < tuple_(created_at, job_id))
        stmt = stmt.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit + 1)
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        items = [job_from_row(r._mapping) for r in rows[:limit]]
        next_cursor = encode_cursor(items[-1]) if len(rows) > limit else None
        return JobPage(items=items, next_cursor=next_cursor)

    def partial_results(self, job_id: str, after: int = 0, limit: int = 100) -> list[PartialSegments]:
        stmt = (
            select(partial_results)
            .where(partial_results.c.job_id == job_id, partial_results.c.id > after)
            .order_by(partial_results.c.id)
            .limit(limit)
        )
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        return [
            PartialSegments(
                id=r.id,
                attempt=r.attempt,
                run=r.lease_token[:8],
                progress=r.progress,
                segments=load_json(r.segments),
            )
            for r in rows
        ]

    def get_results(self, job_id: str) -> dict[str, Any] | None:
        stmt = select(results_table.c.payload).where(results_table.c.job_id == job_id)
        with self._read() as conn:
            payload = conn.execute(stmt).scalar_one_or_none()
        if payload is None:
            return None
        data: dict[str, Any] = load_json(payload)
        return data

    # -- the client's changes

    def cancel(self, job_id: str, tenant: str | None = None) -> Job | None:
        now = self._clock()
        with self._write() as conn:
            row = conn.execute(select(jobs).where(_owned(job_id, tenant)).with_for_update()).first()
            if row is None:
                return None
            job = job_from_row(row._mapping)
            if job.status.is_final:
                return job
            updated = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status.in_(_ACTIVE))
                .values(
                    status=JobStatus.CANCELED.value, finished_at=now, updated_at=now, **JOB_QUEUE.released()
                )
                .returning(*jobs.c)
            ).one()
            followups.job_ended(conn, [job_id], now)
        return job_from_row(updated._mapping)

    def delete_job(self, job_id: str, tenant: str | None = None) -> bool:
        with self._write() as conn:
            found = conn.execute(select(jobs.c.id).where(_owned(job_id, tenant)).with_for_update()).first()
            if found is None:
                return False
            conn.execute(delete(results_table).where(results_table.c.job_id == job_id))
            conn.execute(delete(jobs).where(jobs.c.id == job_id))
            followups.jobs_deleted(conn, [job_id])
        return True

    def delete_results(self, job_id: str) -> None:
        with self._write() as conn:
            conn.execute(delete(results_table).where(results_table.c.job_id == job_id))

    # -- the janitor's side

    def fail_exhausted(self) -> list[str]:
        now = self._clock()
        reason = "gave up: the lease of the last allowed attempt expired"
        message = case(
            (jobs.c.error_code.is_(None), reason),
            else_=reason
            + "; last error: "
            + jobs.c.error_code
            + ": "
            + func.coalesce(jobs.c.error_message, ""),
        )
        stmt = (
            update(jobs)
            .where(
                jobs.c.status == JobStatus.RUNNING.value,
                jobs.c.lease_expires_at < now,
                jobs.c.attempts >= jobs.c.max_attempts,
            )
            .values(
                status=JobStatus.FAILED.value,
                error_code=ATTEMPTS_EXHAUSTED,
                error_message=message,
                finished_at=now,
                updated_at=now,
                **JOB_QUEUE.released(),
            )
            .returning(jobs.c.id)
        )
        with self._write() as conn:
            ids = sorted(conn.execute(stmt).scalars().all())
            followups.job_ended(conn, ids, now)
            return ids

    def count_active(self, tenant: str) -> int:
        stmt = select(func.count()).where(jobs.c.tenant == tenant, jobs.c.status.in_(_ACTIVE))
        with self._read() as conn:
            return int(conn.execute(stmt).scalar_one())

    def count_by_status(self) -> dict[JobStatus, int]:
        stmt = select(jobs.c.status, func.count()).group_by(jobs.c.status)
        with self._read() as conn:
            found = {JobStatus(status): int(n) for status, n in conn.execute(stmt).all()}
        return {status: found.get(status, 0) for status in JobStatus}

    def expire_videos(self, finished_before: float) -> list[str]:
        old = and_(
            jobs.c.status.in_(_FINAL), jobs.c.finished_at < finished_before, jobs.c.blob_key.is_not(None)
        )
        with self._write() as conn:
            rows = conn.execute(select(jobs.c.id, jobs.c.blob_key).where(old).with_for_update()).all()
            ids = [r.id for r in rows]
            for chunk in _chunks(ids):
                conn.execute(
                    update(jobs).where(jobs.c.id.in_(chunk)).values(blob_key=None, updated_at=self._clock())
                )
        return sorted(r.blob_key for r in rows)

    def purge_finished(self, finished_before: float) -> list[str]:
        old = and_(jobs.c.status.in_(_FINAL), jobs.c.finished_at < finished_before)
        with self._write() as conn:
            rows = conn.execute(select(jobs.c.id, jobs.c.blob_key).where(old).with_for_update()).all()
            for chunk in _chunks([r.id for r in rows]):
                conn.execute(delete(results_table).where(results_table.c.job_id.in_(chunk)))
                conn.execute(delete(jobs).where(jobs.c.id.in_(chunk)))
                followups.jobs_deleted(conn, chunk)
        return sorted(r.blob_key for r in rows if r.blob_key is not None)

    def blob_keys(self) -> set[str]:
        stmt = select(jobs.c.blob_key).where(jobs.c.blob_key.is_not(None)).distinct()
        with self._read() as conn:
            return {key for key in conn.execute(stmt).scalars() if key is not None}
