"""Webhook signatures: ``HMAC-SHA256(secret, f"{timestamp}." + body)``, hex.

Headers sent with every delivery::

    X-VAS-Event: job.succeeded
    X-VAS-Delivery: <delivery id>            (the same on every retry: deduplicate on it)
    X-VAS-Timestamp: <unix seconds>
    X-VAS-Signature: v1=<hex digest>

A receiver recomputes the digest over the timestamp header, a dot and the raw body,
compares in constant time, and rejects timestamps too far from its clock (replays).
``DESCRIPTION`` says the same in the OpenAPI document.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-VAS-Signature"
TIMESTAMP_HEADER = "X-VAS-Timestamp"
EVENT_HEADER = "X-VAS-Event"
DELIVERY_HEADER = "X-VAS-Delivery"
VERSION = "v1"

DESCRIPTION = """\
**Webhook requests.** When a job ends, `POST <callback_url>` with `Content-Type: application/json`.
The body is the job JSON exactly as `GET /v1/jobs/{id}` returned it when the job ended (`id` is
the job id; `finished_at` is the time of the event), plus `event` (`job.succeeded`, `job.failed`
or `job.canceled`) and `delivery_id`. Headers:

* `X-VAS-Event`: the event;
* `X-VAS-Delivery`: the delivery id, the same on every retry (deduplicate on it);
* `X-VAS-Timestamp`: unix seconds when this attempt was signed;
* `X-VAS-Signature`: `v1=` + lowercase hex of HMAC-SHA256 with your secret (the whole string
  from `GET /v1/webhook`, `whsec_` included, as UTF-8) as key, over the bytes of the
  timestamp header, `.`, and the raw request body.

To verify: recompute over the raw body bytes (before any JSON parsing), compare in constant
time, and reject timestamps far from your clock (e.g. more than 5 minutes). Any 2xx answer
is success; anything else, or no status line and headers within the send's deadline
(`VAS_WEBHOOK_TIMEOUT_SECONDS`, 10 s by default), is retried with exponential backoff.
"""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return f"{VERSION}={mac.hexdigest()}"


def verify(
    secret: str,
    header: str,
    timestamp: str,
    body: bytes,
    *,
    tolerance_seconds: float = 300.0,
    now: float | None = None,
) -> bool:
    """True when ``header`` signs ``body`` at ``timestamp`` with ``secret`` and the timestamp
    is within ``tolerance_seconds`` of ``now``. Several ``v1=`` values (comma separated,
    e.g. during a secret rotation) are accepted if any matches."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance_seconds:
        return False
    expected = signature(secret, ts, body)
    return any(hmac.compare_digest(expected, part.strip()) for part in header.split(","))
