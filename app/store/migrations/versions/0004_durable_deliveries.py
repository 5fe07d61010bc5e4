"""Webhook deliveries outlive their job: drop the deliveries.job_id foreign key (and its
ON DELETE CASCADE), so deleting a job no longer deletes its pending delivery.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27

Hand-written to match app/store/schema.py at the time of writing; later revisions
change the schema, this file never changes.

SQLite drops a foreign key by rebuilding the table (batch mode). Dropping the old
``deliveries`` table inside the migration's transaction, with foreign keys enforced,
first deletes its rows, and that cascades to ``delivery_attempts``; the attempts are
therefore kept aside and written back after the rebuild.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FK_NAME = "fk_deliveries_job_id_jobs"


def _attempts() -> sa.Table:
    return sa.table(
        "delivery_attempts",
        sa.column("id", sa.Integer()),
        sa.column("delivery_id", sa.String()),
        sa.column("attempt", sa.Integer()),
        sa.column("started_at", sa.Float()),
        sa.column("duration_ms", sa.Float()),
        sa.column("status_code", sa.Integer()),
        sa.column("error", sa.Text()),
    )


def _keep_attempts() -> list[dict[str, Any]]:
    if op.get_bind().dialect.name != "sqlite":
        return []
    return [dict(r) for r in op.get_bind().execute(sa.select(_attempts())).mappings()]


def _restore_attempts(saved: list[dict[str, Any]]) -> None:
    if not saved:
        return
    table = _attempts()
    bind = op.get_bind()
    present = set(bind.execute(sa.select(table.c.id)).scalars())
    missing = [row for row in saved if row["id"] not in present]
    if missing:
        bind.execute(sa.insert(table), missing)


def upgrade() -> None:
    saved = _keep_attempts()
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint(FK_NAME, type_="foreignkey")
    _restore_attempts(saved)


def downgrade() -> None:
    # The foreign key cannot come back while deliveries of deleted jobs remain.
    op.execute("DELETE FROM deliveries WHERE job_id NOT IN (SELECT id FROM jobs)")
    saved = _keep_attempts()
    with op.batch_alter_table("deliveries") as batch:
        batch.create_foreign_key(FK_NAME, "jobs", ["job_id"], ["id"], ondelete="CASCADE")
    _restore_attempts(saved)
