"""What a webhook POSTs: the job JSON exactly as ``GET /v1/jobs/{id}`` returns it, plus
``event`` and ``delivery_id``. Rendered once, when the delivery is queued (in the
transaction that ends the job), so every retry sends the same bytes and a delivery
outlives the job row."""

from __future__ import annotations

import json

from app.api.schemas import job_out
from app.domain import Job


def render(job: Job, event: str, delivery_id: str) -> str:
    """The body of delivery ``delivery_id`` announcing ``event`` for ``job`` (compact JSON)."""
    document = job_out(job).model_dump(mode="json")
    document["event"] = event
    document["delivery_id"] = delivery_id
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)
