"""Engines for the job database, and ``SqlTables``, the base of every store over one.

* SQLite: there is no row locking; instead every write transaction starts with
  ``BEGIN IMMEDIATE``, which takes the database's single write lock up front. Writers
  therefore serialise (waiting up to ``busy_timeout``) instead of failing half-way
  with ``SQLITE_BUSY`` when a deferred read transaction tries to upgrade. Reads use
  a plain deferred ``BEGIN`` and, thanks to WAL, never block or get blocked.
* PostgreSQL: a pre-pinged pool; rows are locked where a store asks for it
  (``FOR UPDATE``, ``FOR UPDATE SKIP LOCKED`` in ``app.store.lease_queue``).

Connection-level failures (``OperationalError``, ``InterfaceError``, pool timeouts)
become ``app.errors.Unavailable`` at this boundary, so callers handle one exception.
A full disk (SQLite's ``SQLITE_FULL``, or ``SQLITE_IOERR_SHMSIZE`` when no connection was
open and the shared-memory file cannot be sized; PostgreSQL's ``disk_full``) becomes its
subclass ``InsufficientStorage``: the same "retry later", but one that names its cause.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.errors import InsufficientStorage, Unavailable

WRITE_OPTION = "vas_write"
NO_BEGIN_OPTION = "vas_no_begin"
SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_CONNECT_TIMEOUT_S = 5

_UNAVAILABLE_ERRORS = (OperationalError, InterfaceError, PoolTimeout, DisconnectionError)
_SQLITE_DISK_FULL = (13, 4874)  # SQLITE_FULL, SQLITE_IOERR_SHMSIZE
_PG_DISK_FULL = "53100"


def write_options() -> dict[str, Any]:
    """Execution options that make a connection's transactions write transactions
    (``BEGIN IMMEDIATE`` on SQLite; no effect on PostgreSQL)."""
    return {WRITE_OPTION: True}


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
        if _is_disk_full(exc):
            raise InsufficientStorage("the database's disk is full") from exc
        raise Unavailable("database unavailable") from exc


def _is_disk_full(exc: Exception) -> bool:
    """SQLite's "database or disk is full" or PostgreSQL's DiskFull, under SQLAlchemy's wrapper."""
    driver_error = getattr(exc, "orig", None)
    return (
        getattr(driver_error, "sqlite_errorcode", None) in _SQLITE_DISK_FULL
        or getattr(driver_error, "sqlstate", None) == _PG_DISK_FULL
    )


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
