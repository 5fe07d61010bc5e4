"""Fixtures for the job-store contract: the same tests run against real SQLite and
real PostgreSQL databases, each migrated through ``app.store.migrate.upgrade``.

PostgreSQL (127.0.0.1:5432, user ``postgres``, trust auth): one template database is
migrated per session, then every test gets ``CREATE DATABASE t_<uuid> TEMPLATE ...``
(a file copy, much faster than re-running migrations) and drops it afterwards.
Set ``VAS_TEST_PG_DSN`` to point elsewhere. Postgres params are skipped, with the
reason, only when the server cannot be reached.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from app.store import migrate
from app.store.sql import SqlJobStore
from tests.conftest import skip_or_fail

PG_DSN = os.environ.get("VAS_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")


@dataclass
class FakeClock:
    """A clock the test moves by hand, so leases expire without sleeping."""

    now: float = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _pg_admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(PG_DSN, autocommit=True, connect_timeout=3)


def _pg_url(dbname: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(PG_DSN)
    user = info.get("user", "postgres")
    host = info.get("host", "127.0.0.1")
    port = info.get("port", 5432)
    password = info.get("password")
    auth = f"{user}:{password}" if password else f"{user}"
    return f"postgresql+psycopg://{auth}@{host}:{port}/{dbname}"


class PgDatabases:
    """Creates throw-away databases; ``template`` is migrated once on first use."""

    def __init__(self) -> None:
        self.template: str | None = None
        self.error: str | None = None

    def _ensure_template(self) -> str:
        if self.template is None:
            name = f"vas_tmpl_{uuid.uuid4().hex[:12]}"
            with _pg_admin() as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            self.template = name
            migrate.upgrade(_pg_url(name))
        return self.template

    def create(self, *, migrated: bool = True) -> tuple[str, str]:
        """A fresh database: (name, SQLAlchemy URL)."""
        name = f"t_{uuid.uuid4().hex}"
        template = self._ensure_template() if migrated else "template0"
        with _pg_admin() as admin:
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return name, _pg_url(name)

    def drop(self, name: str) -> None:
        with _pg_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        if self.template is not None:
            self.drop(self.template)


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases]:
    try:
        with _pg_admin() as admin:
            admin.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        skip_or_fail(f"PostgreSQL unreachable at {PG_DSN!r}: {exc}")
    dbs = PgDatabases()
    try:
        yield dbs
    finally:
        dbs.close()


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def empty_db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A URL to an empty, unmigrated database of the parametrized backend."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'db' / 'jobs.sqlite3'}"
        return
    dbs: PgDatabases = request.getfixturevalue("pg_databases")
    name, url = dbs.create(migrated=False)
    try:
        yield url
    finally:
        dbs.drop(name)


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A URL to a fresh database at the newest migration."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'db' / 'jobs.sqlite3'}"
        migrate.upgrade(url)
        yield url
        return
    dbs: PgDatabases = request.getfixturevalue("pg_databases")
    name, url = dbs.create(migrated=True)
    try:
        yield url
    finally:
        dbs.drop(name)


@pytest.fixture
def store(db_url: str, clock: FakeClock) -> Iterator[SqlJobStore]:
    s = SqlJobStore(db_url, pool_size=4, clock=clock)
    try:
        yield s
    finally:
        s.close()
