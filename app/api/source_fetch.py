"""Fetch a job's video from its ``source_url`` into blob storage, under the webhook rules.

A URL is a way into the service's own network, so every hop is checked as a webhook target
is (``app.webhooks.urls``): http(s) only, and each address the name resolves to must be
public or in ``source_url_allowed_networks``. The request then goes to a checked address
(the name only as ``Host`` and TLS SNI), so a name that re-resolves elsewhere (DNS rebinding)
cannot move it. A redirect is a new URL, checked again before it is followed, at most
``MAX_REDIRECTS`` of them. One deadline (``source_fetch_timeout_seconds``) bounds the lookups,
connects, redirects and every read (``DeadlineBackend``), so a server that drips bytes
cannot hold a request open.

The body goes to the sink chunk by chunk, hashed on the way, never whole in memory: a
declared ``Content-Length`` over ``max_upload_bytes`` is refused before a byte is read, a
body without one is cut off as soon as it passes the limit. The caller aborts the sink on
any error. Blocking (sockets, file writes): run it in a worker thread.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ssl import SSLContext
from urllib.parse import unquote, urlsplit

import httpcore
import httpx
from starlette.concurrency import run_in_threadpool

from app.api.upload import FileSink, ReceivedUpload, SinkT, SourceRequest, safe_filename
from app.errors import (
    InvalidOptions,
    InvalidSourceUrl,
    SourceTimeout,
    SourceTooLarge,
    SourceUnreachable,
    UnsupportedMedia,
)
from app.settings import Settings
from app.webhooks.addresses import Network
from app.webhooks.deadline import Deadline, DeadlineBackend, resolve_within
from app.webhooks.urls import (
    Resolver,
    Target,
    check_addresses,
    host_addresses,
    parse_networks,
    parse_url,
    resolve,
)

MAX_REDIRECTS = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
ALLOW_SETTING = "VAS_SOURCE_URL_ALLOWED_NETWORKS"
USER_AGENT = b"video-analysis-service (source_url fetch)"


@dataclass(frozen=True)
class Fetched:
    """What a fetch stored: the URL that answered with the body and the body's SHA-256."""

    url: str
    sha256: str

    @property
    def filename(self) -> str:
        """The last part of the URL's path, for display (``upload`` when it has none)."""
        return safe_filename(unquote(urlsplit(self.url).path))


def checked_target(url: str, allowed: Sequence[Network], resolver: Resolver, field: str) -> Target:
    """Where ``url`` may be fetched from: every address of its host checked, in the
    resolver's order. A refused URL is ``InvalidSourceUrl``; a host that does not resolve
    ``SourceUnreachable`` (``SourceTimeout`` past the deadline)."""
    try:
        url, parts, port = parse_url(url, field)
    except InvalidOptions as exc:
        raise InvalidSourceUrl(exc.detail) from exc
    host = parts.hostname or ""
    try:
        addresses = host_addresses(host, port, resolver)
    except TimeoutError as exc:
        raise SourceTimeout(f"{field} host {host!r} did not resolve before the fetch's deadline") from exc
    except (OSError, UnicodeError) as exc:
        raise SourceUnreachable(f"{field} host {host!r} does not resolve") from exc
    try:
        check_addresses(addresses, allowed, field, ALLOW_SETTING)
    except InvalidOptions as exc:
        raise InvalidSourceUrl(exc.detail) from exc
    return Target(url=url, addresses=tuple(a.split("%")[0] for a in addresses))


class _Fetch:
    """One fetch: its limits, deadline and TLS context, and the sink and hash it fills."""

    def __init__(self, sink: FileSink, max_bytes: int, deadline: Deadline, ssl_context: SSLContext) -> None:
        self.sink, self.max_bytes, self.deadline, self.ssl_context = sink, max_bytes, deadline, ssl_context
        self.digest = hashlib.sha256()

    def get(self, target: Target) -> str | None:
        """GET ``target`` from the first checked address that accepts the connection: the
        redirect's absolute URL, or None once the body is in the sink."""
        url = httpx.URL(target.url)
        headers = [
            (b"Host", url.netloc),
            (b"User-Agent", USER_AGENT),
            (b"Accept", b"*/*"),
            (b"Accept-Encoding", b"identity"),  # the bytes as stored, not a compressed form
        ]
        extensions = {"sni_hostname": url.raw_host.decode("ascii")} if url.scheme == "https" else {}
        backend = DeadlineBackend(self.deadline)
        with httpcore.ConnectionPool(
            ssl_context=self.ssl_context, max_keepalive_connections=0, network_backend=backend
        ) as pool:
            *fallbacks, last = target.addresses
            for address in fallbacks:
                try:
                    return self._get_from(pool, url, address, headers, extensions)
                except httpcore.ConnectError:
                    continue  # the next checked address, as a connect by name would
            return self._get_from(pool, url, last, headers, extensions)

    def _get_from(
        self,
        pool: httpcore.ConnectionPool,
        url: httpx.URL,
        address: str,
        headers: list[tuple[bytes, bytes]],
        extensions: dict[str, str],
    ) -> str | None:
        at = httpcore.URL(
            scheme=url.raw_scheme, host=address.encode("ascii"), port=url.port, target=url.raw_path
        )
        with pool.stream("GET", at, headers=headers, extensions=extensions) as response:
            found = {name.lower(): value for name, value in response.headers}
            if response.status in REDIRECT_STATUSES:
                location = found.get(b"location", b"").decode("latin-1").strip()
                if not location:
                    raise SourceUnreachable(f"source_url answered {response.status} without a Location")
                return str(url.join(location))
            if response.status != 200:
                raise SourceUnreachable(f"source_url answered HTTP {response.status}, not 200 with a video")
            declared = found.get(b"content-length", b"").decode("latin-1").strip()
            if declared.isdigit() and int(declared) > self.max_bytes:
                raise SourceTooLarge(
                    f"the video at source_url ({declared} bytes) is larger than the limit of {self.max_bytes} bytes"
                )
            for chunk in response.iter_stream():
                if self.sink.size + len(chunk) > self.max_bytes:
                    raise SourceTooLarge(
                        f"the video at source_url is larger than the limit of {self.max_bytes} bytes"
                    )
                self.sink.write(chunk)
                self.digest.update(chunk)
        return None


def fetch(
    url: str,
    sink: FileSink,
    *,
    max_bytes: int,
    allowed: Sequence[Network],
    timeout: float,
    resolver: Resolver = resolve,
    ssl_context: SSLContext | None = None,
) -> Fetched:
    """Stream the body at ``url`` (after at most ``MAX_REDIRECTS`` checked redirects) into
    ``sink`` within ``timeout`` seconds; a coded ``RequestError`` saying why not."""
    deadline = Deadline(timeout)
    bounded = resolve_within(resolver, deadline)
    job = _Fetch(sink, max_bytes, deadline, ssl_context or httpx.create_ssl_context())
    field = "source_url"
    try:
        for _ in range(MAX_REDIRECTS + 1):
            target = checked_target(url, allowed, bounded, field)
            location = job.get(target)
            if location is None:
                return Fetched(url=target.url, sha256=job.digest.hexdigest())
            url, field = location, f"source_url's redirect to {location[:200]!r}"
    except httpcore.TimeoutException as exc:
        raise SourceTimeout(
            f"fetching source_url took longer than {timeout:g} s (source_fetch_timeout_seconds)"
        ) from exc
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as exc:
        raise SourceUnreachable(f"source_url could not be fetched: {exc or type(exc).__name__}") from exc
    except httpx.InvalidURL as exc:
        raise InvalidSourceUrl(f"{field} is not a URL that can be fetched: {exc}") from exc
    raise SourceUnreachable(f"source_url redirected more than {MAX_REDIRECTS} times")


async def fetch_source(
    source: SourceRequest, open_sink: Callable[[], SinkT], settings: Settings
) -> ReceivedUpload[SinkT]:
    """The video at ``source.url`` in a new sink, as if it had been uploaded with the
    request's fields; the sink is aborted if the fetch fails (nothing is left behind)."""
    sink = open_sink()
    try:
        fetched = await run_in_threadpool(
            fetch,
            source.url,
            sink,
            max_bytes=settings.max_upload_bytes,
            allowed=parse_networks(settings.source_url_allowed_networks),
            timeout=settings.source_fetch_timeout_seconds,
        )
        if sink.size == 0:
            raise UnsupportedMedia("the body at source_url is empty")
    except BaseException:
        sink.abort()
        raise
    return ReceivedUpload(
        fields=source.fields, writer=sink, filename=fetched.filename, file_sha256=fetched.sha256
    )
