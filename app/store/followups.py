"""What a job's end sets off, written in the same transaction as the final state.

* its partial results go (the final results, if any, are the single truth);
* a job with a callback URL gets a webhook delivery queued (the outbox row that
  workers send, retry and log; see ``app.webhooks``). One row per (job, event), so
  running this twice for the same end queues nothing new.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from app.domain import JobStatus
from app.store.schema import deliveries, jobs, partial_results

PENDING = "pending"


def event_name(status: JobStatus | str) -> str:
    return f"job.{JobStatus(status).value}"


def job_ended(conn: Connection, job_ids: Iterable[str], now: float) -> None:
    ids = list(job_ids)
    if not ids:
        return
    conn.execute(delete(partial_results).where(partial_results.c.job_id.in_(ids)))
    final = [s.value for s in JobStatus if s.is_final]
    rows = conn.execute(
        select(jobs.c.id, jobs.c.status, jobs.c.callback_url, jobs.c.callback_owner).where(
            jobs.c.id.in_(ids), jobs.c.status.in_(final), jobs.c.callback_url.is_not(None)
        )
    ).all()
    for row in rows:
        event = event_name(row.status)
        exists = conn.execute(
            select(deliveries.c.id).where(deliveries.c.job_id == row.id, deliveries.c.event == event)
        ).first()
        if exists is not None:
            continue
        conn.execute(
            insert(deliveries).values(
                id=str(uuid.uuid4()),
                job_id=row.id,
                event=event,
                url=row.callback_url,
                owner=row.callback_owner or "",
                status=PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
        )
