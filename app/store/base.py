"""The job-store contract. One SQLAlchemy implementation serves SQLite and PostgreSQL.

Every state change a worker makes after claiming is fenced by its lease token:
the UPDATE must match ``id``, ``lease_token`` and ``status='running'`` and affect
exactly one row, otherwise ``LeaseLost`` is raised and nothing is written.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from app.domain import Job, JobError, JobPage, JobStatus, Lease, NewJob, PartialSegments


class JobStore(ABC):
    @abstractmethod
    def create_job(self, new: NewJob, *, fingerprint: str | None = None) -> tuple[Job, bool]:
        """Insert a queued job. Returns (job, created); with an idempotency key that
        already exists for the tenant, returns (existing job, False) and inserts nothing,
        or raises ``IdempotencyKeyReused`` when that job's request had another
        ``fingerprint`` (see ``get_job_by_idempotency_key``)."""

    @abstractmethod
    def get_job(self, job_id: str, tenant: str | None = None) -> Job | None:
        """The job, or None (also None when ``tenant`` is given and does not own it)."""

    @abstractmethod
    def get_job_by_idempotency_key(
        self, tenant: str, key: str, *, fingerprint: str | None = None
    ) -> Job | None:
        """The tenant's job with this key, or None. With ``fingerprint`` (of the request now
        sent), raises ``IdempotencyKeyReused`` when the job was created by a request with
        another one; jobs created without a fingerprint (before revision 0005) match any."""

    @abstractmethod
    def list_jobs(
        self,
        *,
        tenant: str | None = None,
        status: JobStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        """Newest first; ``cursor`` is the opaque ``next_cursor`` of the previous page."""

    @abstractmethod
    def claim(self, worker_id: str, lease_seconds: float) -> Lease | None:
        """Atomically take the oldest claimable job (queued, or running with an expired
        lease and attempts left), set status running, attempts += 1 and a fresh lease."""

    @abstractmethod
    def renew(self, lease: Lease, lease_seconds: float) -> Lease:
        """Extend the lease; raises LeaseLost."""

    @abstractmethod
    def report_progress(self, lease: Lease, progress: float) -> None:
        """Store progress in [0, 1]; raises LeaseLost (e.g. the job was canceled)."""

    @abstractmethod
    def complete(self, lease: Lease, results: dict[str, Any]) -> Job:
        """Write results and mark succeeded, in one transaction; raises LeaseLost."""

    @abstractmethod
    def fail(self, lease: Lease, error: JobError, *, retryable: bool) -> Job:
        """Record a failure. Retryable with attempts left: back to queued (error kept
        as last error). Otherwise: failed (code ``attempts_exhausted`` when a retryable
        error used the last attempt). Raises LeaseLost."""

    @abstractmethod
    def release(self, lease: Lease) -> Job:
        """Give the job back to the queue without spending an attempt; raises LeaseLost."""

    @abstractmethod
    def cancel(self, job_id: str, tenant: str | None = None) -> Job | None:
        """Queued/running -> canceled (lease cleared, so the worker stops at its next
        fenced write). Final jobs are returned unchanged. None if unknown."""

    @abstractmethod
    def delete_job(self, job_id: str, tenant: str | None = None) -> bool:
        """Remove the row and its results. True if it existed."""

    @abstractmethod
    def append_partial(self, lease: Lease, segments: list[dict[str, Any]], progress: float) -> None:
        """Record segments finished so far (for the events stream); raises LeaseLost.
        Rows of earlier attempts go; all go when the job ends (the results are the truth)."""

    @abstractmethod
    def partial_results(self, job_id: str, after: int = 0, limit: int = 100) -> list[PartialSegments]:
        """Partial segment batches with ``id > after``, oldest first."""

    @abstractmethod
    def get_results(self, job_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def delete_results(self, job_id: str) -> None: ...

    @abstractmethod
    def fail_exhausted(self) -> list[str]:
        """Jobs running with an expired lease and no attempts left end failed
        (``attempts_exhausted``). Returns their ids."""

    @abstractmethod
    def count_active(self, tenant: str) -> int:
        """Queued + running jobs of ``tenant`` (its concurrent-jobs limit)."""

    @abstractmethod
    def count_by_status(self) -> dict[JobStatus, int]:
        """Number of jobs in every status (0 for none), for metrics and queue depth."""

    @abstractmethod
    def expire_videos(self, finished_before: float) -> list[str]:
        """Retention: final jobs finished before the cutoff let go of their video (blob key
        set to NULL; the row, its video metadata and its results stay). Returns the keys,
        for the caller to delete the blobs; a crash in between leaves orphans, which the
        orphan sweep removes."""

    @abstractmethod
    def purge_finished(self, finished_before: float) -> list[str]:
        """Retention of results: delete final jobs finished before the cutoff, rows and
        results. Returns the blob keys they still referenced."""

    @abstractmethod
    def blob_keys(self) -> set[str]:
        """Blob keys referenced by any job (for the orphan-blob sweep)."""

    @abstractmethod
    def ping(self) -> None:
        """Raise Unavailable unless the database answers."""

    @abstractmethod
    def migrations_current(self) -> bool: ...

    @abstractmethod
    def maintenance(self) -> None:
        """Periodic housekeeping (SQLite: WAL checkpoint)."""

    @abstractmethod
    def close(self) -> None: ...
