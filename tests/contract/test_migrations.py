"""Alembic migrations on both dialects: from empty to head, idempotent, matching schema.py."""

from __future__ import annotations

import subprocess
import sys

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from app.store import migrate
from app.store.engine import build_engine
from app.store.schema import metadata


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


def test_0004_keeps_deliveries_and_their_attempts_past_the_job(empty_db_url: str) -> None:
    """0004 drops deliveries.job_id's foreign key. On SQLite that rebuilds the table, whose
    drop would cascade to delivery_attempts: the attempts must come through, and after it
    a pending delivery outlives its deleted job. Downgrading drops such orphans."""
    cfg = migrate.alembic_config(empty_db_url)
    command.upgrade(cfg, "0003")
    engine = build_engine(empty_db_url, pool_size=1)
    job = "INSERT INTO jobs (id, tenant, status, model, options, created_at, attempts, max_attempts, updated_at) "
    delivery = (
        "INSERT INTO deliveries (id, job_id, event, url, owner, status, attempts, next_attempt_at, "
        "created_at, updated_at) VALUES (:id, :job, 'job.canceled', 'https://h.example/x', 'o', 'pending', "
        "1, 0, 0, 0)"
    )
    try:
        with engine.begin() as conn:
            for job_id in ("j1", "j2"):
                conn.execute(
                    text(job + "VALUES (:id, 't', 'canceled', 'm', '{}', 0, 0, 1, 0)"), {"id": job_id}
                )
                conn.execute(text(delivery), {"id": f"d-{job_id}", "job": job_id})
                conn.execute(
                    text(
                        "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, error) "
                        "VALUES (:d, 1, 0, 1, 'HTTP 500')"
                    ),
                    {"d": f"d-{job_id}"},
                )
        command.upgrade(cfg, "head")
        attempts = "SELECT delivery_id FROM delivery_attempts ORDER BY delivery_id"
        with engine.begin() as conn:
            assert conn.execute(text(attempts)).scalars().all() == ["d-j1", "d-j2"]
            conn.execute(text("DELETE FROM jobs WHERE id = 'j1'"))
            assert conn.execute(text("SELECT id FROM deliveries ORDER BY id")).scalars().all() == [
                "d-j1",
                "d-j2",
            ]
        command.downgrade(cfg, "0003")
        with engine.begin() as conn:
            assert conn.execute(text("SELECT id FROM deliveries")).scalars().all() == ["d-j2"]
            assert conn.execute(text(attempts)).scalars().all() == ["d-j2"]
            conn.execute(text("DELETE FROM jobs WHERE id = 'j2'"))
            assert conn.execute(text("SELECT count(*) FROM deliveries")).scalar_one() == 0, "cascade is back"
    finally:
        engine.dispose()
