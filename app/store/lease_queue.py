"""The lease queue, written once: claim the next claimable row under a fresh token, renew
its lease, and fence every later write by that token. Three tables are such queues:
analysis jobs (``app.store.job_leases``), annotated-video renders (``app.store.renders``)
and webhook deliveries (``app.store.webhooks``); each is a ``LeaseQueue`` naming its
columns and its claimable condition.

Locking model
-------------
* A claim is ONE statement: ``UPDATE t SET <token>, <expiry>, ... WHERE id = (SELECT id
  FROM t AS candidate WHERE <claimable> ORDER BY <order> LIMIT 1 FOR UPDATE SKIP LOCKED)
  RETURNING *``. On PostgreSQL concurrent claimers skip rows another claimer holds, so
  they never wait on, or take, the same row. SQLite does not render ``FOR UPDATE``: the
  caller's write transaction starts with ``BEGIN IMMEDIATE`` (``app.store.engine``), so
  claimers serialise and each sees the previous claim committed.
* A lease is a token (new at every claim) and an expiry. Once the expiry passes the row
  is claimable again, as the queue's ``claimable`` condition says, by someone else.
* Every write after the claim is fenced: it matches the row's id AND the holder's token
  (AND ``held``, e.g. ``status = 'running'``). A holder whose lease was taken over, or
  whose row was settled or canceled, matches no row and so writes nothing.

Every method runs on a connection of the caller's write transaction (``SqlTables._write``),
so a fenced write and what goes with it (results, follow-ups) commit together.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, or_, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.sql.selectable import FromClause

Claimable = Callable[[FromClause, float], ColumnElement[bool]]
"""The claimable rows of a queue, on the candidate alias of its table, at ``now``."""


@dataclass(frozen=True)
class Claim:
    """A row just claimed: its new values, and the lease that now holds it."""

    row: RowMapping
    token: str
    expires_at: float


@dataclass(frozen=True, eq=False)
class LeaseQueue:
    """A table whose rows are claimed with a lease. Column arguments are column names."""

    table: Table
    id_column: str
    token_column: str
    expiry_column: str
    claimable: Claimable
    order_by: tuple[str, ...]
    """The claim takes the first claimable row in this order."""
    on_claim: Mapping[str, Any] = field(default_factory=dict)
    """What a claim sets besides the lease (e.g. status running, attempts + 1)."""
    held: ColumnElement[bool] | None = None
    """What a fenced write requires of the row besides id and token."""

    def claim(
        self, conn: Connection, *, now: float, lease_seconds: float, values: Mapping[str, Any]
    ) -> Claim | None:
        """Lease the first claimable row for ``lease_seconds``, also setting ``values``;
        None when no row is claimable (or every claimable one is being claimed)."""
        token = uuid.uuid4().hex
        expires_at = now + lease_seconds
        candidate = self.table.alias("candidate")
        pick = (
            select(candidate.c[self.id_column])
            .where(self.claimable(candidate, now))
            .order_by(*(candidate.c[name] for name in self.order_by))
            .limit(1)
            .with_for_update(skip_locked=True)  # rendered on PostgreSQL, dropped on SQLite
            .scalar_subquery()
        )
        lease = {self.token_column: token, self.expiry_column: expires_at}
        stmt = (
            update(self.table)
            .where(self.table.c[self.id_column] == pick)
            .values(**self.on_claim, **lease, **values)
            .returning(*self.table.c)
        )
        row = conn.execute(stmt).first()
        return None if row is None else Claim(row._mapping, token, expires_at)

    def fence(self, item_id: str, token: str | None) -> ColumnElement[bool]:
        """The row ``item_id`` while the lease ``token`` still holds it."""
        held = [self.table.c[self.id_column] == item_id, self.table.c[self.token_column] == token]
        if self.held is not None:
            held.append(self.held)
        return and_(*held)

    def fenced_update(
        self, conn: Connection, item_id: str, token: str | None, values: Mapping[str, Any]
    ) -> RowMapping | None:
        """Set ``values`` on the row if the lease still holds it: the row as written, or
        None (and nothing written) when the lease was lost."""
        stmt = update(self.table).where(self.fence(item_id, token)).values(**values).returning(*self.table.c)
        row = conn.execute(stmt).first()
        return None if row is None else row._mapping

    def fenced_write(
        self, conn: Connection, item_id: str, token: str | None, values: Mapping[str, Any]
    ) -> bool:
        """``fenced_update`` without sending the row back: True when written."""
        result = conn.execute(update(self.table).where(self.fence(item_id, token)).values(**values))
        return result.rowcount == 1

    def renew(
        self,
        conn: Connection,
        item_id: str,
        token: str | None,
        *,
        expires_at: float,
        values: Mapping[str, Any],
    ) -> RowMapping | None:
        """Move the lease's expiry to ``expires_at`` (fenced, as ``fenced_update``)."""
        return self.fenced_update(conn, item_id, token, {self.expiry_column: expires_at, **values})

    def released(self) -> dict[str, Any]:
        """The values that end a lease: no token, no expiry."""
        return {self.token_column: None, self.expiry_column: None}


def work_queue(
    table: Table,
    *,
    id_column: str,
    queued: str,
    running: str,
    attempts_left: Callable[[FromClause], ColumnElement[bool]],
    order_by: tuple[str, ...],
) -> LeaseQueue:
    """A queue of work items with ``status``, ``attempts``, ``lease_token`` and
    ``lease_expires_at`` columns: claimable when ``queued``, or ``running`` with a lapsed
    lease, while ``attempts_left``; a claim sets ``running`` and counts an attempt, and a
    fenced write requires ``running`` too."""

    def claimable(candidate: FromClause, now: float) -> ColumnElement[bool]:
        return and_(
            or_(
                candidate.c.status == queued,
                and_(candidate.c.status == running, candidate.c.lease_expires_at < now),
            ),
            attempts_left(candidate),
        )

    return LeaseQueue(
        table=table,
        id_column=id_column,
        token_column="lease_token",
        expiry_column="lease_expires_at",
        claimable=claimable,
        order_by=order_by,
        on_claim={"status": running, "attempts": table.c.attempts + 1},
        held=table.c.status == running,
    )
