"""SQLite specifics the contract relies on: WAL, busy timeout, foreign keys, and
BEGIN IMMEDIATE for every write transaction (deferred BEGIN for reads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from app.store import migrate
from app.store.engine import build_engine
from app.store.sql import SqlJobStore
from tests.contract.test_job_store import new_job


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Any:
    url = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'jobs.sqlite3'}"
    migrate.upgrade(url)
    store = SqlJobStore(url, pool_size=2)
    yield store
    store.close()


def test_pragmas(sqlite_store: SqlJobStore) -> None:
    with sqlite_store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def test_writes_begin_immediate_reads_begin_deferred(sqlite_store: SqlJobStore) -> None:
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement.split()[0].upper() + (" IMMEDIATE" if "IMMEDIATE" in statement else ""))

    event.listen(sqlite_store.engine, "before_cursor_execute", record)
    job, _ = sqlite_store.create_job(new_job())
    assert statements == ["BEGIN IMMEDIATE", "INSERT"]
    statements.clear()
    sqlite_store.get_job(job.id)
    assert statements == ["BEGIN", "SELECT"]
    statements.clear()
    sqlite_store.claim("w", 10)
    assert statements == ["BEGIN IMMEDIATE", "UPDATE"]


def test_maintenance_truncates_the_wal(sqlite_store: SqlJobStore, tmp_path: Path) -> None:
    for _ in range(20):
        sqlite_store.create_job(new_job())
    wal = Path(str(sqlite_store.engine.url.database) + "-wal")
    assert wal.exists() and wal.stat().st_size > 0
    sqlite_store.maintenance()
    assert wal.stat().st_size == 0


def test_results_cascade_with_foreign_keys(sqlite_store: SqlJobStore) -> None:
    job, _ = sqlite_store.create_job(new_job())
    sqlite_store.complete(sqlite_store.claim("w", 10), {"x": 1})  # type: ignore[arg-type]
    with sqlite_store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM jobs WHERE id = ?", (job.id,))
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM results").scalar() == 0


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_database_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        build_engine(url)
