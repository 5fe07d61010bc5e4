"""The keyset cursor of job listings: an opaque token for "after this item".

Pages are ordered by (created_at, id) descending; the cursor carries that pair of the
last item shown, so the next page starts strictly after it however many jobs arrive
meanwhile (an offset would skip or repeat them).
"""

from __future__ import annotations

import base64
import binascii
import json

from app.domain import Job


def encode_cursor(job: Job) -> str:
    """Opaque keyset cursor: the (created_at, id) of the last item of a page."""
    raw = json.dumps([job.created_at, job.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """Inverse of ``encode_cursor``; a malformed cursor raises ``ValueError`` (the API
    turns it into a 400)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, job_id = json.loads(raw)
        if isinstance(created_at, bool) or not isinstance(created_at, int | float):
            raise ValueError("created_at")
        if not isinstance(job_id, str):
            raise ValueError("id")
        return float(created_at), job_id
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ValueError("invalid cursor") from exc
