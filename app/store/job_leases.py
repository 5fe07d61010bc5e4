"""The worker's side of the job queue: claim a job, then change it only while the lease
holds (renew, progress, partial results, complete, fail, release).

The ``jobs`` table is a ``LeaseQueue`` (``app.store.lease_queue`` has the locking model):
a claim takes the oldest job that is queued, or running with a lapsed lease, with
attempts left; every later write matches id, lease token and ``status = 'running'``, and
raises ``LeaseLost`` (writing nothing) when they no longer match.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, select
from sqlalchemy.engine import Connection

from app.domain import Job, JobError, JobStatus, Lease
from app.errors import LeaseLost
from app.store import followups
from app.store.engine import SqlTables
from app.store.lease_queue import work_queue
from app.store.schema import dump_json, job_from_row, jobs, partial_results
from app.store.schema import results as results_table

ATTEMPTS_EXHAUSTED = "attempts_exhausted"
NOTIFY_CHANNEL = "vas_jobs"

JOB_QUEUE = work_queue(
    jobs,
    id_column="id",
    queued=JobStatus.QUEUED.value,
    running=JobStatus.RUNNING.value,
    attempts_left=lambda candidate: candidate.c.attempts < candidate.c.max_attempts,
    order_by=("created_at", "id"),
)


def notify_queued(conn: Connection) -> None:
    """PostgreSQL: wake listening workers when this transaction commits (see
    ``app.store.notify``); identical notifications within one transaction fold into one."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_notify(NOTIFY_CHANNEL, "")))


def _lost(lease: Lease) -> LeaseLost:
    return LeaseLost(f"job {lease.job.id}: lease {lease.token[:8]} no longer held")


class JobLeases(SqlTables):
    """Claim and the fenced writes of ``JobStore``; see the module docstring."""

    def _fenced_update(self, conn: Connection, lease: Lease, values: dict[str, Any]) -> Job:
        row = JOB_QUEUE.fenced_update(conn, lease.job.id, lease.token, values)
        if row is None:
            raise _lost(lease)
        return job_from_row(row)

    def claim(self, worker_id: str, lease_seconds: float) -> Lease | None:
        now = self._clock()
        values = {
            "worker_id": worker_id,
            "progress": 0.0,
            "started_at": func.coalesce(jobs.c.started_at, now),
            "updated_at": now,
        }
        with self._write() as conn:
            claimed = JOB_QUEUE.claim(conn, now=now, lease_seconds=lease_seconds, values=values)
        if claimed is None:
            return None
        job = job_from_row(claimed.row)
        return Lease(job=job, token=claimed.token, worker_id=worker_id, expires_at=claimed.expires_at)

    def renew(self, lease: Lease, lease_seconds: float) -> Lease:
        now = self._clock()
        expires_at = now + lease_seconds
        with self._write() as conn:
            row = JOB_QUEUE.renew(
                conn, lease.job.id, lease.token, expires_at=expires_at, values={"updated_at": now}
            )
        if row is None:
            raise _lost(lease)
        return Lease(
            job=job_from_row(row), token=lease.token, worker_id=lease.worker_id, expires_at=expires_at
        )

    def report_progress(self, lease: Lease, progress: float) -> None:
        if math.isnan(progress):
            raise ValueError("progress is NaN")
        progress = min(1.0, max(0.0, float(progress)))
        with self._write() as conn:
            self._fenced_update(conn, lease, {"progress": progress, "updated_at": self._clock()})

    def complete(self, lease: Lease, results: dict[str, Any]) -> Job:
        payload = dump_json(results)  # serialise first: a bad payload writes nothing
        now = self._clock()
        with self._write() as conn:
            job = self._fenced_update(
                conn,
                lease,
                {
                    "status": JobStatus.SUCCEEDED.value,
                    "progress": 1.0,
                    "finished_at": now,
                    "updated_at": now,
                    "error_code": None,
                    "error_message": None,
                    **JOB_QUEUE.released(),
                },
            )
            conn.execute(delete(results_table).where(results_table.c.job_id == job.id))
            conn.execute(insert(results_table).values(job_id=job.id, payload=payload, created_at=now))
            followups.job_ended(conn, [job.id], now)
        return job

    def fail(self, lease: Lease, error: JobError, *, retryable: bool) -> Job:
        now = self._clock()
        with self._write() as conn:
            row = conn.execute(
                select(jobs.c.attempts, jobs.c.max_attempts)
                .where(JOB_QUEUE.fence(lease.job.id, lease.token))
                .with_for_update()
            ).first()
            if row is None:
                raise _lost(lease)
            values: dict[str, Any] = {"updated_at": now, **JOB_QUEUE.released()}
            if retryable and row.attempts < row.max_attempts:
                values |= {
                    "status": JobStatus.QUEUED.value,
                    "worker_id": None,
                    "progress": 0.0,
                    "error_code": error.code,
                    "error_message": error.message,
                }
                notify_queued(conn)
            elif retryable:
                values |= {
                    "status": JobStatus.FAILED.value,
                    "finished_at": now,
                    "error_code": ATTEMPTS_EXHAUSTED,
                    "error_message": f"gave up after {row.attempts} attempts; "
                    f"last error: {error.code}: {error.message}",
                }
            else:
                values |= {
                    "status": JobStatus.FAILED.value,
                    "finished_at": now,
                    "error_code": error.code,
                    "error_message": error.message,
                }
            job = self._fenced_update(conn, lease, values)
            if job.status.is_final:
                followups.job_ended(conn, [job.id], now)
            return job

    def release(self, lease: Lease) -> Job:
        with self._write() as conn:
            notify_queued(conn)
            return self._fenced_update(
                conn,
                lease,
                {
                    "status": JobStatus.QUEUED.value,
                    "attempts": case((jobs.c.attempts > 0, jobs.c.attempts - 1), else_=0),
                    "worker_id": None,
                    "progress": 0.0,
                    "updated_at": self._clock(),
                    **JOB_QUEUE.released(),
                },
            )

    def append_partial(self, lease: Lease, segments: list[dict[str, Any]], progress: float) -> None:
        body = dump_json(segments)
        now = self._clock()
        with self._write() as conn:
            attempt = conn.execute(
                select(jobs.c.attempts).where(JOB_QUEUE.fence(lease.job.id, lease.token)).with_for_update()
            ).scalar()
            if attempt is None:
                raise _lost(lease)
            earlier_runs = and_(
                partial_results.c.job_id == lease.job.id, partial_results.c.lease_token != lease.token
            )
            conn.execute(delete(partial_results).where(earlier_runs))
            conn.execute(
                insert(partial_results).values(
                    job_id=lease.job.id,
                    attempt=attempt,
                    lease_token=lease.token,
                    progress=progress,
                    segments=body,
                    created_at=now,
                )
            )
