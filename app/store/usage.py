"""Usage counters for per-tenant limits, shared by every API replica through the database.

Fixed windows: one row per (tenant, metric, window start). ``consume`` adds to a
counter only if the total stays within the limit, in ONE statement (``INSERT ... ON
CONFLICT DO UPDATE ... WHERE``, on SQLite and PostgreSQL alike), so concurrent replicas
can never both take the last unit: PostgreSQL locks the conflicting row and re-checks
the WHERE against its newest version; SQLite serialises writers (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from app.store.engine import SqlTables
from app.store.schema import usage_counters


class UsageStore(ABC):
    @abstractmethod
    def consume(
        self, tenant: str, metric: str, window_start: int, amount: int, *, limit: int, expires_at: float
    ) -> bool:
        """Add ``amount`` to the window's counter if the new total is at most ``limit``.
        True when added; False (and nothing changed) when it would exceed the limit."""

    @abstractmethod
    def used(self, tenant: str, metric: str, window_start: int) -> int:
        """The window's counter (0 when nothing was counted)."""

    @abstractmethod
    def purge_expired(self, now: float) -> int:
        """Delete counters whose window ended before ``now``; returns how many."""


class SqlUsageStore(SqlTables, UsageStore):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._insert: Any = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def consume(
        self, tenant: str, metric: str, window_start: int, amount: int, *, limit: int, expires_at: float
    ) -> bool:
        if amount < 0:
            raise ValueError("amount must not be negative")
        if amount > limit:
            return False
        stmt = self._insert(usage_counters).values(
            tenant=tenant, metric=metric, window_start=window_start, count=amount, expires_at=expires_at
        )
        total = usage_counters.c.count + stmt.excluded.count
        stmt = stmt.on_conflict_do_update(
            index_elements=[usage_counters.c.tenant, usage_counters.c.metric, usage_counters.c.window_start],
            set_={"count": total},
            where=total <= limit,
        ).returning(usage_counters.c.count)
        with self._write() as conn:
            return conn.execute(stmt).first() is not None

    def used(self, tenant: str, metric: str, window_start: int) -> int:
        stmt = select(usage_counters.c.count).where(
            usage_counters.c.tenant == tenant,
            usage_counters.c.metric == metric,
            usage_counters.c.window_start == window_start,
        )
        with self._read() as conn:
            return int(conn.execute(stmt).scalar_one_or_none() or 0)

    def purge_expired(self, now: float) -> int:
        stmt = delete(usage_counters).where(usage_counters.c.expires_at < now)
        with self._write() as conn:
            return int(conn.execute(stmt).rowcount or 0)
