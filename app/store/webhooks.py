"""The webhook tables: owners (secret, default URL), the deliveries outbox and its log.

Deliveries are queued by ``app.store.followups`` in the transaction that ends a job, with
their body already rendered, and do not reference the job row: a pending delivery is sent
even if the job is deleted meanwhile (it is removed once it settles).
The outbox is a ``LeaseQueue`` (``app.store.lease_queue`` has the locking model): a
sender claims the most overdue pending delivery with a short lock (``lock_token``,
``locked_until``), sends it, then records the outcome fenced by the lock token; a sender
that dies mid-send leaves the lock to expire and another one retries.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, insert, or_, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.sql.selectable import FromClause

from app.domain import DeliveryStatus
from app.store.engine import SqlTables
from app.store.lease_queue import LeaseQueue
from app.store.schema import deliveries, delivery_attempts, jobs, webhook_owners


def _due(candidate: FromClause, now: float) -> ColumnElement[bool]:
    """Pending, due, and not locked by a sender (or its lock lapsed)."""
    return and_(
        candidate.c.status == DeliveryStatus.PENDING.value,
        candidate.c.next_attempt_at <= now,
        or_(candidate.c.locked_until.is_(None), candidate.c.locked_until < now),
    )


DELIVERY_QUEUE = LeaseQueue(
    table=deliveries,
    id_column="id",
    token_column="lock_token",
    expiry_column="locked_until",
    claimable=_due,
    order_by=("next_attempt_at", "id"),
)


@dataclass(frozen=True)
class Owner:
    owner: str
    secret: str
    default_url: str | None


@dataclass(frozen=True)
class Attempt:
    attempt: int
    started_at: float
    duration_ms: float
    status_code: int | None
    error: str | None


@dataclass(frozen=True)
class Delivery:
    id: str
    job_id: str
    event: str
    url: str
    owner: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: float
    body: str | None
    last_status_code: int | None
    last_error: str | None
    created_at: float
    delivered_at: float | None
    lock_token: str | None = None
    log: list[Attempt] = field(default_factory=list)


def owner_id(tenant: str, key_id: str | None) -> str:
    """Webhook settings belong to the API key; with auth off, to the (only) tenant."""
    return key_id if key_id is not None else f"tenant:{tenant}"


def _delivery(m: RowMapping) -> Delivery:
    return Delivery(
        id=m["id"],
        job_id=m["job_id"],
        event=m["event"],
        url=m["url"],
        owner=m["owner"],
        status=DeliveryStatus(m["status"]),
        attempts=int(m["attempts"]),
        next_attempt_at=float(m["next_attempt_at"]),
        body=m["body"],
        last_status_code=m["last_status_code"],
        last_error=m["last_error"],
        created_at=float(m["created_at"]),
        delivered_at=None if m["delivered_at"] is None else float(m["delivered_at"]),
        lock_token=m["lock_token"],
    )


class WebhookStore(SqlTables):
    # -- owners

    def get_owner(self, owner: str) -> Owner | None:
        with self._read() as conn:
            row = conn.execute(select(webhook_owners).where(webhook_owners.c.owner == owner)).first()
        return None if row is None else Owner(row.owner, row.secret, row.default_url)

    def ensure_owner(self, owner: str) -> Owner:
        """The owner's settings, created with a fresh secret on first use."""
        found = self.get_owner(owner)
        if found is not None:
            return found
        now = self._clock()
        with self._write() as conn:
            row = conn.execute(select(webhook_owners).where(webhook_owners.c.owner == owner)).first()
            if row is None:
                secret = "whsec_" + secrets.token_urlsafe(32)
                conn.execute(
                    insert(webhook_owners).values(
                        owner=owner, secret=secret, default_url=None, created_at=now, updated_at=now
                    )
                )
                return Owner(owner, secret, None)
        return Owner(row.owner, row.secret, row.default_url)

    def update_owner(
        self, owner: str, *, default_url: str | None = None, set_url: bool = False, rotate: bool = False
    ) -> Owner:
        self.ensure_owner(owner)
        values: dict[str, Any] = {"updated_at": self._clock()}
        if set_url:
            values["default_url"] = default_url
        if rotate:
            values["secret"] = "whsec_" + secrets.token_urlsafe(32)
        with self._write() as conn:
            conn.execute(update(webhook_owners).where(webhook_owners.c.owner == owner).values(**values))
        found = self.get_owner(owner)
        assert found is not None
        return found

    # -- deliveries

    def for_job(self, job_id: str) -> list[Delivery]:
        """A job's deliveries with their attempt logs, oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                select(deliveries).where(deliveries.c.job_id == job_id).order_by(deliveries.c.created_at)
            ).all()
            found = [_delivery(r._mapping) for r in rows]
            if not found:
                return []
            attempts = conn.execute(
                select(delivery_attempts)
                .where(delivery_attempts.c.delivery_id.in_([d.id for d in found]))
                .order_by(delivery_attempts.c.attempt)
            ).all()
        for d in found:
            d.log.extend(
                Attempt(a.attempt, a.started_at, a.duration_ms, a.status_code, a.error)
                for a in attempts
                if a.delivery_id == d.id
            )
        return found

    def claim_due(self, lock_seconds: float) -> Delivery | None:
        """Lock the most overdue pending delivery for ``lock_seconds``; None when none is due."""
        now = self._clock()
        with self._write() as conn:
            claimed = DELIVERY_QUEUE.claim(
                conn, now=now, lease_seconds=lock_seconds, values={"updated_at": now}
            )
        return None if claimed is None else _delivery(claimed.row)

    def save_body(self, delivery: Delivery, body: str) -> bool:
        """Fix the body at the first attempt, so every retry sends the same bytes."""
        with self._write() as conn:
            return DELIVERY_QUEUE.fenced_write(conn, delivery.id, delivery.lock_token, {"body": body})

    @staticmethod
    def _job_exists(conn: Connection, job_id: str) -> bool:
        """Locks the job row (FOR SHARE) if there is one, so a concurrent delete waits and
        then removes this settled delivery with the job (``followups.jobs_deleted``)."""
        found = conn.execute(select(jobs.c.id).where(jobs.c.id == job_id).with_for_update(read=True)).first()
        return found is not None

    def record(
        self,
        delivery: Delivery,
        *,
        started_at: float,
        duration_ms: float,
        status_code: int | None,
        error: str | None,
        status: DeliveryStatus,
        next_attempt_at: float | None = None,
    ) -> bool:
        """Log the attempt and set the delivery's new state, fenced by its lock token.
        False if the lock was lost (another sender took over after it expired)."""
        now = self._clock()
        attempt = delivery.attempts + 1
        values: dict[str, Any] = {
            "status": status.value,
            "attempts": attempt,
            "last_status_code": status_code,
            "last_error": error,
            **DELIVERY_QUEUE.released(),
            "updated_at": now,
        }
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        if status is DeliveryStatus.DELIVERED:
            values["delivered_at"] = now
        with self._write() as conn:
            # Settled after its job was deleted: nobody can read its log any more.
            orphan = status is not DeliveryStatus.PENDING and not self._job_exists(conn, delivery.job_id)
            if not DELIVERY_QUEUE.fenced_write(conn, delivery.id, delivery.lock_token, values):
                return False
            if orphan:
                conn.execute(delete(deliveries).where(deliveries.c.id == delivery.id))
                return True
            conn.execute(
                insert(delivery_attempts).values(
                    delivery_id=delivery.id,
                    attempt=attempt,
                    started_at=started_at,
                    duration_ms=duration_ms,
                    status_code=status_code,
                    error=error,
                )
            )
        return True
