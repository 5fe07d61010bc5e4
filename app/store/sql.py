"""``SqlJobStore``: the one ``JobStore`` implementation, for SQLite and PostgreSQL.

It is assembled from the worker's side (``app.store.job_leases``: claim and the writes
fenced by the lease) and the client's and janitor's side (``app.store.job_records``),
over one engine (``app.store.engine``: ``BEGIN IMMEDIATE`` write transactions on SQLite,
outages as ``Unavailable``). The locking model of the claim is ``app.store.lease_queue``'s.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.errors import Unavailable
from app.store import migrate
from app.store.base import JobStore
from app.store.engine import NO_BEGIN_OPTION, build_engine
from app.store.job_leases import JobLeases
from app.store.job_records import JobRecords


class SqlJobStore(JobLeases, JobRecords, JobStore):
    """Job store over SQLAlchemy Core; see the module docstring for the locking model."""

    def __init__(self, url: str, *, pool_size: int = 5, clock: Callable[[], float] = time.time) -> None:
        super().__init__(build_engine(url, pool_size=pool_size), clock=clock)

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

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
