"""Alembic migrations on both dialects: from empty to head, idempotent, matching schema.py."""

from __future__ import annotations

import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from app.store import migrate
from app.store.schema import metadata
from app.store.sql import build_engine


def test_is_current_false_before_upgrade(empty_db_url: str) -> None:
    engine = build_engine(empty_db_url, pool_size=1)
    try:
        assert migrate.is_current(engine) is False
        assert migrate.current_revisions(engine) == set()
    finally:
        engine.dispose()


def test_upgrade_creates_tables_and_is_idempotent(empty_db_url: str) -> None:
    migrate.upgrade(empty_db_url)  # on SQLite this also creates the file and its folder
    engine = build_engine(empty_db_url, pool_size=1)
    try:
        assert {"jobs", "results", "alembic_version"} <= set(inspect(engine).get_table_names())
        assert migrate.is_current(engine)
        before = migrate.current_revisions(engine)
        migrate.upgrade(empty_db_url)
        assert migrate.current_revisions(engine) == before == set(migrate.head_revisions())
    finally:
        engine.dispose()


def test_migrated_schema_matches_schema_module(db_url: str) -> None:
    """The hand-written revisions and app/store/schema.py describe the same tables."""
    engine = build_engine(db_url, pool_size=1)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_concurrent_upgrades_from_several_processes(empty_db_url: str) -> None:
    """Several services starting at once on an empty database: one migrates, the
    others wait (BEGIN IMMEDIATE / advisory lock) and find it at head."""
    code = "import sys; from app.store.migrate import upgrade; upgrade(sys.argv[1])"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, empty_db_url], stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    failures = []
    for p in procs:
        _, err = p.communicate(timeout=60)
        if p.returncode != 0:
            failures.append(err)
    assert failures == []
    engine = build_engine(empty_db_url, pool_size=1)
    try:
        assert migrate.is_current(engine)
    finally:
        engine.dispose()
