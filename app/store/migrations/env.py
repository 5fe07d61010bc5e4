"""Alembic environment, driven by ``app.store.migrate`` (no alembic.ini at runtime).

The whole upgrade runs in ONE transaction (``transactional_ddl=True``): on SQLite
that transaction starts with ``BEGIN IMMEDIATE`` (the store's write engine), on
PostgreSQL it first takes a transaction-scoped advisory lock. Either way, several
processes starting at once serialise; the later ones find the schema at head and
do nothing.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from app.store.engine import build_engine, write_options
from app.store.schema import metadata

config = context.config
target_metadata = metadata

# Arbitrary constant: "vas migrations" (an advisory lock key on PostgreSQL).
ADVISORY_LOCK_KEY = 0x7661_735F_6D69


def _url() -> str:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL given to the migration environment")
    return str(url)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        transactional_ddl=True,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        transactional_ddl=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = build_engine(_url(), pool_size=1)
    try:
        with engine.connect() as conn:
            _run(conn.execution_options(**write_options()))
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
