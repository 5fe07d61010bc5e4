"""What a job's end sets off, written in the same transaction as the final state.

* its partial results go (the final results, if any, are the single truth);
* a job with a callback URL gets a webhook delivery queued (the outbox row that
  workers send, retry and log; see ``app.store.webhooks``), its body the job JSON as of
  now. One row per (job, event), so running this twice for the same end queues
  nothing new. The row does not reference the job: deleting the job leaves a
  pending delivery to be sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from app.domain import DeliveryStatus, JobStatus
from app.job_json import webhook_body
from app.store.schema import deliveries, job_from_row, jobs, partial_results


def event_name(status: JobStatus | str) -> str:
    return f"job.{JobStatus(status).value}"


def job_ended(conn: Connection, job_ids: Iterable[str], now: float) -> None:
    ids = list(job_ids)
    if not ids:
        return
    conn.execute(delete(partial_results).where(partial_results.c.job_id.in_(ids)))
    final = [s.value for s in JobStatus if s.is_final]
    rows = conn.execute(
        select(jobs).where(jobs.c.id.in_(ids), jobs.c.status.in_(final), jobs.c.callback_url.is_not(None))
    ).all()
    for row in rows:
        event = event_name(row.status)
        exists = conn.execute(
            select(deliveries.c.id).where(deliveries.c.job_id == row.id, deliveries.c.event == event)
        ).first()
        if exists is not None:
            continue
        delivery_id = str(uuid.uuid4())
        conn.execute(
            insert(deliveries).values(
                id=delivery_id,
                job_id=row.id,
                event=event,
                url=row.callback_url,
                owner=row.callback_owner or "",
                status=DeliveryStatus.PENDING.value,
                attempts=0,
                next_attempt_at=now,
                body=webhook_body(job_from_row(row._mapping), event, delivery_id),
                created_at=now,
                updated_at=now,
            )
        )


def jobs_deleted(conn: Connection, job_ids: list[str]) -> None:
    """Called in the transaction that deletes jobs: their settled deliveries (and attempt
    logs) go with them; pending ones stay to be sent, and go when they settle."""
    if job_ids:
        conn.execute(
            delete(deliveries).where(
                deliveries.c.job_id.in_(job_ids), deliveries.c.status != DeliveryStatus.PENDING.value
            )
        )
