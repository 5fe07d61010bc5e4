"""jobs.request_fingerprint: the SHA-256 of the request that created a job with an
Idempotency-Key (file bytes and form fields), so that reusing the key with a different
request is refused (``idempotency_key_reused``) instead of silently answered with the
first job.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

Hand-written to match app/store/schema.py at the time of writing; later revisions
change the schema, this file never changes. Jobs created before it keep NULL, which
matches any request (they replay as they did).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("request_fingerprint", sa.String(64), nullable=True))


def downgrade() -> None:
    # Not batch mode: rebuilding ``jobs`` on SQLite would drop the old table, and with it
    # (ON DELETE CASCADE) every result, partial result and render. SQLite >= 3.35 drops a
    # plain column in place.
    op.drop_column("jobs", "request_fingerprint")
