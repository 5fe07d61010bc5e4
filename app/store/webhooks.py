"""The webhook tables: owners (secret, default URL), the deliveries outbox and its log.

Deliveries are queued by ``app.store.followups`` in the transaction that ends a job, with
their body already rendered, and do not reference the job row: a pending delivery is sent
even if the job is deleted meanwhile (it is removed once it settles).
A sender claims a due one with a short lock (``FOR UPDATE SKIP LOCKED`` on PostgreSQL,
the write lock on SQLite), sends it, then records the outcome fenced by the lock token;
a sender that dies mid-send leaves the lock to expire and another one retries.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.engine import Connection

from app.store.schema import deliveries, delivery_attempts, jobs, webhook_owners
from app.store.sql import SqlTables

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


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
    status: str
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


def _delivery(row: Any) -> Delivery:
    m = row._mapping
    return Delivery(
        id=m["id"],
        job_id=m["job_id"],
        event=m["event"],
        url=m["url"],
        owner=m["owner"],
        status=m["status"],
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
            found = [_delivery(r) for r in rows]
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
        token = uuid.uuid4().hex
        candidate = deliveries.alias("candidate")
        pick = (
            select(candidate.c.id)
            .where(
                candidate.c.status == PENDING,
                candidate.c.next_attempt_at <= now,
                or_(candidate.c.locked_until.is_(None), candidate.c.locked_until < now),
            )
            .order_by(candidate.c.next_attempt_at, candidate.c.id)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        stmt = (
            update(deliveries)
            .where(deliveries.c.id == pick)
            .values(lock_token=token, locked_until=now + lock_seconds, updated_at=now)
            .returning(*deliveries.c)
        )
        with self._write() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else _delivery(row)

    def save_body(self, delivery: Delivery, body: str) -> bool:
        """Fix the body at the first attempt, so every retry sends the same bytes."""
        with self._write() as conn:
            result = conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery.id, deliveries.c.lock_token == delivery.lock_token)
                .values(body=body)
            )
        return result.rowcount == 1

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
        status: str,
        next_attempt_at: float | None = None,
    ) -> bool:
        """Log the attempt and set the delivery's new state, fenced by its lock token.
        False if the lock was lost (another sender took over after it expired)."""
        now = self._clock()
        attempt = delivery.attempts + 1
        values: dict[str, Any] = {
            "status": status,
            "attempts": attempt,
            "last_status_code": status_code,
            "last_error": error,
            "lock_token": None,
            "locked_until": None,
            "updated_at": now,
        }
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        if status == DELIVERED:
            values["delivered_at"] = now
        fence = and_(deliveries.c.id == delivery.id, deliveries.c.lock_token == delivery.lock_token)
        with self._write() as conn:
            # Settled after its job was deleted: nobody can read its log any more.
            orphan = status != PENDING and not self._job_exists(conn, delivery.job_id)
            if conn.execute(update(deliveries).where(fence).values(**values)).rowcount != 1:
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
