"""``SqlJobStore``: the one ``JobStore`` implementation, for SQLite and PostgreSQL.

Concurrency model
-----------------
* PostgreSQL: ``claim`` is a single ``UPDATE ... WHERE id = (SELECT ... FOR UPDATE
  SKIP LOCKED)``, so concurrent workers never wait on, or take, the same row.
* SQLite: there is no row locking; instead every write transaction starts with
  ``BEGIN IMMEDIATE``, which takes the database's single write lock up front. Writers
  therefore serialise (waiting up to ``busy_timeout``) instead of failing half-way
  with ``SQLITE_BUSY`` when a deferred read transaction tries to upgrade. Reads use
  a plain deferred ``BEGIN`` and, thanks to WAL, never block or get blocked.
* Every change after the claim is fenced by the lease token (see ``app.store.base``).

Errors
------
Connection-level failures (``OperationalError``, ``InterfaceError``, pool timeouts)
become ``app.errors.Unavailable`` at this boundary, so callers handle one exception.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    and_,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import (
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.sql.elements import ColumnElement

from app.domain import Job, JobError, JobPage, JobStatus, Lease, NewJob, PartialSegments
from app.errors import LeaseLost, Unavailable
from app.store import followups, migrate
from app.store.base import JobStore
from app.store.schema import dump_json, job_from_row, jobs, load_json, new_job_values, partial_results
from app.store.schema import results as results_table

WRITE_OPTION = "vas_write"
NO_BEGIN_OPTION = "vas_no_begin"
SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_CONNECT_TIMEOUT_S = 5
ATTEMPTS_EXHAUSTED = "attempts_exhausted"
NOTIFY_CHANNEL = "vas_jobs"

_UNAVAILABLE_ERRORS = (OperationalError, InterfaceError, PoolTimeout, DisconnectionError)
_QUEUED = JobStatus.QUEUED.value
_RUNNING = JobStatus.RUNNING.value
_LEASE_CLEARED: dict[str, Any] = {"lease_token": None, "lease_expires_at": None}


def write_options() -> dict[str, Any]:
    """Execution options that make a connection's transactions write transactions
    (``BEGIN IMMEDIATE`` on SQLite; no effect on PostgreSQL)."""
    return {WRITE_OPTION: True}


# --------------------------------------------------------------------------- engines


def normalize_url(url: str) -> URL:
    """Parse ``url``; bare ``postgres://``/``postgresql://`` URLs get the psycopg 3 driver
    (the only PostgreSQL driver this service installs)."""
    sa_url = make_url(url)
    if sa_url.drivername in ("postgres", "postgresql"):
        sa_url = sa_url.set(drivername="postgresql+psycopg")
    return sa_url


def build_engine(url: str, *, pool_size: int = 5) -> Engine:
    """An engine configured for the job store (SQLite pragmas/BEGIN hooks, or a
    pre-pinged PostgreSQL pool). Writes must go through ``write_options()``."""
    sa_url = normalize_url(url)
    backend = sa_url.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(sa_url, pool_size)
    if backend == "postgresql":
        return create_engine(
            sa_url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S},
        )
    raise ValueError(f"unsupported database backend {backend!r}: use sqlite or postgresql+psycopg")


def _sqlite_engine(sa_url: URL, pool_size: int) -> Engine:
    database = sa_url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        # Each pooled connection would see its own private database.
        raise ValueError("the job store needs a SQLite file path, not an in-memory or URI database")
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        sa_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control away from the sqlite3 module (it would emit a
    # deferred BEGIN lazily, and none at all for SELECT); _sqlite_on_begin emits ours.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    options = conn.get_execution_options()
    if options.get(NO_BEGIN_OPTION):
        return  # statements that must run outside a transaction (wal_checkpoint)
    if options.get(WRITE_OPTION):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


@contextmanager
def _unavailable_on_db_error() -> Iterator[None]:
    try:
        yield
    except _UNAVAILABLE_ERRORS as exc:
        raise Unavailable("database unavailable") from exc


# --------------------------------------------------------------------------- cursor


def encode_cursor(job: Job) -> str:
    """Opaque keyset cursor: the (created_at, id) of the last item of a page."""
    raw = json.dumps([job.created_at, job.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """Inverse of ``encode_cursor``; a malformed cursor raises ``ValueError`` (the API
    turns it into a 400)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, job_id = json.loads(raw)
        if isinstance(created_at, bool) or not isinstance(created_at, int | float):
            raise ValueError("created_at")
        if not isinstance(job_id, str):
            raise ValueError("id")
        return float(created_at), job_id
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ValueError("invalid cursor") from exc


# --------------------------------------------------------------------------- store


def _chunks(items: list[str], size: int = 500) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _fence(lease: Lease) -> ColumnElement[bool]:
    return and_(jobs.c.id == lease.job.id, jobs.c.lease_token == lease.token, jobs.c.status == _RUNNING)


def _owned(job_id: str, tenant: str | None) -> ColumnElement[bool]:
    if tenant is None:
        return jobs.c.id == job_id
    return and_(jobs.c.id == job_id, jobs.c.tenant == tenant)


class SqlTables:
    """Shared plumbing of the stores over the job database: read and write transactions
    on one engine, database outages turned into ``Unavailable``."""

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**write_options())
        self._clock = clock

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with _unavailable_on_db_error(), self._engine.connect() as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction: committed on success, rolled back on any exception."""
        with _unavailable_on_db_error(), self._writer.begin() as conn:
            yield conn


class SqlJobStore(SqlTables, JobStore):
    """Job store over SQLAlchemy Core; see the module docstring for the locking model."""

    def __init__(self, url: str, *, pool_size: int = 5, clock: Callable[[], float] = time.time) -> None:
        super().__init__(build_engine(url, pool_size=pool_size), clock=clock)

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    def _notify_queued(self, conn: Connection) -> None:
        """PostgreSQL: wake listening workers when this transaction commits (see
        ``app.store.notify``); identical notifications within one transaction fold into one."""
        if self.dialect == "postgresql":
            conn.execute(select(func.pg_notify(NOTIFY_CHANNEL, "")))

    def _fenced_update(self, conn: Connection, lease: Lease, values: dict[str, Any]) -> Job:
        row = conn.execute(update(jobs).where(_fence(lease)).values(**values).returning(*jobs.c)).first()
        if row is None:
            raise LeaseLost(f"job {lease.job.id}: lease {lease.token[:8]} no longer held")
        return job_from_row(row._mapping)

    # -- submission and queries

    def create_job(self, new: NewJob) -> tuple[Job, bool]:
        if new.idempotency_key is not None:
            existing = self.get_job_by_idempotency_key(new.tenant, new.idempotency_key)
            if existing is not None:
                return existing, False
        try:
            with self._write() as conn:
                stmt = insert(jobs).values(new_job_values(new, self._clock())).returning(*jobs.c)
                row = conn.execute(stmt).one()
                self._notify_queued(conn)
        except IntegrityError:
            # Lost a race with a concurrent submission carrying the same key.
            if new.idempotency_key is None:
                raise
            existing = self.get_job_by_idempotency_key(new.tenant, new.idempotency_key)
            if existing is None:
                raise
            return existing, False
        return job_from_row(row._mapping), True

    def get_job(self, job_id: str, tenant: str | None = None) -> Job | None:
        with self._read() as conn:
            row = conn.execute(select(jobs).where(_owned(job_id, tenant))).first()
        return None if row is None else job_from_row(row._mapping)

    def get_job_by_idempotency_key(self, tenant: str, key: str) -> Job | None:
        stmt = select(jobs).where(jobs.c.tenant == tenant, jobs.c.idempotency_key == key)
        with self._read() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else job_from_row(row._mapping)

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

    # -- the worker's side: claim, then fenced changes

    def claim(self, worker_id: str, lease_seconds: float) -> Lease | None:
        now = self._clock()
        token = uuid.uuid4().hex
        expires_at = now + lease_seconds
        candidate = jobs.alias("candidate")
        pick = (
            select(candidate.c.id)
            .where(
                or_(
                    candidate.c.status == _QUEUED,
                    and_(candidate.c.status == _RUNNING, candidate.c.lease_expires_at < now),
                ),
                candidate.c.attempts < candidate.c.max_attempts,
            )
            .order_by(candidate.c.created_at, candidate.c.id)
            .limit(1)
            .with_for_update(skip_locked=True)  # rendered on PostgreSQL, dropped on SQLite
            .scalar_subquery()
        )
        stmt = (
            update(jobs)
            .where(jobs.c.id == pick)
            .values(
                status=_RUNNING,
                attempts=jobs.c.attempts + 1,
                lease_token=token,
                lease_expires_at=expires_at,
                worker_id=worker_id,
                progress=0.0,
                started_at=func.coalesce(jobs.c.started_at, now),
                updated_at=now,
            )
            .returning(*jobs.c)
        )
        with self._write() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            return None
        return Lease(job=job_from_row(row._mapping), token=token, worker_id=worker_id, expires_at=expires_at)

    def renew(self, lease: Lease, lease_seconds: float) -> Lease:
        now = self._clock()
        expires_at = now + lease_seconds
        with self._write() as conn:
            job = self._fenced_update(conn, lease, {"lease_expires_at": expires_at, "updated_at": now})
        return Lease(job=job, token=lease.token, worker_id=lease.worker_id, expires_at=expires_at)

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
                    **_LEASE_CLEARED,
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
                select(jobs.c.attempts, jobs.c.max_attempts).where(_fence(lease)).with_for_update()
            ).first()
            if row is None:
                raise LeaseLost(f"job {lease.job.id}: lease {lease.token[:8]} no longer held")
            values: dict[str, Any] = {"updated_at": now, **_LEASE_CLEARED}
            if retryable and row.attempts < row.max_attempts:
                values |= {
                    "status": _QUEUED,
                    "worker_id": None,
                    "progress": 0.0,
                    "error_code": error.code,
                    "error_message": error.message,
                }
                self._notify_queued(conn)
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
            self._notify_queued(conn)
            return self._fenced_update(
                conn,
                lease,
                {
                    "status": _QUEUED,
                    "attempts": case((jobs.c.attempts > 0, jobs.c.attempts - 1), else_=0),
                    "worker_id": None,
                    "progress": 0.0,
                    "updated_at": self._clock(),
                    **_LEASE_CLEARED,
                },
            )

    # -- the client's and the janitor's side

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
                .where(jobs.c.id == job_id, jobs.c.status.in_([_QUEUED, _RUNNING]))
                .values(status=JobStatus.CANCELED.value, finished_at=now, updated_at=now, **_LEASE_CLEARED)
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

    def append_partial(self, lease: Lease, segments: list[dict[str, Any]], progress: float) -> None:
        body = dump_json(segments)
        now = self._clock()
        with self._write() as conn:
            attempt = conn.execute(select(jobs.c.attempts).where(_fence(lease)).with_for_update()).scalar()
            if attempt is None:
                raise LeaseLost(f"job {lease.job.id}: lease {lease.token[:8]} no longer held")
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

    def delete_results(self, job_id: str) -> None:
        with self._write() as conn:
            conn.execute(delete(results_table).where(results_table.c.job_id == job_id))

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
                jobs.c.status == _RUNNING,
                jobs.c.lease_expires_at < now,
                jobs.c.attempts >= jobs.c.max_attempts,
            )
            .values(
                status=JobStatus.FAILED.value,
                error_code=ATTEMPTS_EXHAUSTED,
                error_message=message,
                finished_at=now,
                updated_at=now,
                **_LEASE_CLEARED,
            )
            .returning(jobs.c.id)
        )
        with self._write() as conn:
            ids = sorted(conn.execute(stmt).scalars().all())
            followups.job_ended(conn, ids, now)
            return ids

    def count_active(self, tenant: str) -> int:
        stmt = select(func.count()).where(jobs.c.tenant == tenant, jobs.c.status.in_([_QUEUED, _RUNNING]))
        with self._read() as conn:
            return int(conn.execute(stmt).scalar_one())

    def count_by_status(self) -> dict[JobStatus, int]:
        stmt = select(jobs.c.status, func.count()).group_by(jobs.c.status)
        with self._read() as conn:
            found = {JobStatus(status): int(n) for status, n in conn.execute(stmt).all()}
        return {status: found.get(status, 0) for status in JobStatus}

    def expire_videos(self, finished_before: float) -> list[str]:
        final = [s.value for s in JobStatus if s.is_final]
        old = and_(
            jobs.c.status.in_(final), jobs.c.finished_at < finished_before, jobs.c.blob_key.is_not(None)
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
        final = [s.value for s in JobStatus if s.is_final]
        old = and_(jobs.c.status.in_(final), jobs.c.finished_at < finished_before)
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

    # -- operations

    def ping(self) -> None:
        try:
            with self._read() as conn:
                conn.execute(select(1)).scalar_one()
        except SQLAlchemyError as exc:
            raise Unavailable("database unavailable") from exc

    def migrations_current(self) -> bool:
        with self._read() as conn:
            return migrate.is_current(conn)

    def maintenance(self) -> None:
        """SQLite: fold the WAL back into the main file so it does not grow without
        bound under constant readers. PostgreSQL: autovacuum does the equivalent."""
        if self.dialect != "sqlite":
            return
        with self._read() as conn:
            conn.execution_options(**{NO_BEGIN_OPTION: True})
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").all()

    def close(self) -> None:
        self._engine.dispose()
