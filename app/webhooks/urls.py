"""Webhook target validation: http(s) only, and no loopback, private, link-local,
multicast or reserved addresses unless a network is allowed in settings
(``webhook_allowed_networks``). Checked at submission and again before every send,
since a name may resolve elsewhere later."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from app.errors import InvalidOptions

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]
MAX_URL_LENGTH = 2048


def parse_networks(text: str) -> list[Network]:
    """``"127.0.0.0/8, 10.1.0.0/16"`` -> networks; a bad entry raises ValueError."""
    return [ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()]


def resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def validate_url(url: str, allowed: Sequence[Network] = (), *, resolver: Resolver = resolve) -> str:
    """The URL, stripped, if a webhook may be sent there; else InvalidOptions saying why."""
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise InvalidOptions(f"callback_url is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise InvalidOptions(f"callback_url is not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidOptions("callback_url must be an absolute http:// or https:// URL")
    if parts.username or parts.password:
        raise InvalidOptions("callback_url must not carry credentials")
    try:
        addresses = resolver(parts.hostname, port)
    except (OSError, UnicodeError) as exc:
        raise InvalidOptions(f"callback_url host {parts.hostname!r} does not resolve") from exc
    if not addresses:
        raise InvalidOptions(f"callback_url host {parts.hostname!r} does not resolve")
    for text in addresses:
        address = ipaddress.ip_address(text.split("%")[0])
        if not _public(address) and not any(address in net for net in allowed):
            raise InvalidOptions(
                f"callback_url resolves to {address}, a loopback/private/reserved address "
                "(allow its network with VAS_WEBHOOK_ALLOWED_NETWORKS)"
            )
    return url
