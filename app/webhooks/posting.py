"""One webhook POST to the checked addresses of its target, under one deadline.

The URL's host is replaced by a checked address (``urls.pin``), with the original ``Host``
header and, for https, the original name as SNI and for certificate verification. A refused
or unreachable address (``httpcore.ConnectError``) moves on to the next checked one, as a
connect by name would; all of them share the deadline. Each send has its own connection
pool, so a TLS connection verified for one name is never reused for another name on the
same address. Only the status and headers are read: the body of the answer is not.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from ssl import SSLContext

import httpcore
import httpx

from app.webhooks.deadline import Deadline, DeadlineBackend
from app.webhooks.urls import Target

log = logging.getLogger(__name__)

SEND_ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
)
"""What a send may fail with (timeouts first: they are ``TimeoutException``)."""


@dataclass(frozen=True)
class Answer:
    """The receiver's status and the ``Retry-After`` it asked for (0 when none)."""

    status_code: int
    retry_after: float


def _retry_after(headers: list[tuple[bytes, bytes]]) -> float:
    for name, value in headers:
        if name.lower() == b"retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return 0.0
    return 0.0


def post(
    target: Target,
    body: bytes,
    headers: Mapping[str, str],
    *,
    deadline: Deadline,
    ssl_context: SSLContext,
) -> Answer:
    """POST ``body`` to the first checked address that accepts the connection; the last
    ConnectError when none does, a ``TimeoutException`` once ``deadline`` has passed."""
    url = httpx.URL(target.url)
    sent = [(b"Host", url.netloc), *((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())]
    extensions = {"sni_hostname": url.raw_host.decode("ascii")} if url.scheme == "https" else {}
    pool = httpcore.ConnectionPool(
        ssl_context=ssl_context, max_keepalive_connections=0, network_backend=DeadlineBackend(deadline)
    )
    with pool:
        *fallbacks, last = target.addresses
        for address in fallbacks:
            try:
                return _post_to(pool, url, address, body, sent, extensions)
            except httpcore.ConnectError as exc:
                log.info("webhook: %s did not connect (%s); trying the next address", address, exc)
        return _post_to(pool, url, last, body, sent, extensions)


def _post_to(
    pool: httpcore.ConnectionPool,
    url: httpx.URL,
    address: str,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    extensions: dict[str, str],
) -> Answer:
    at = httpcore.URL(scheme=url.raw_scheme, host=address.encode("ascii"), port=url.port, target=url.raw_path)
    with pool.stream("POST", at, headers=headers, content=body, extensions=extensions) as response:
        return Answer(response.status, _retry_after(response.headers))
