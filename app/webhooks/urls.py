"""Webhook target validation: http(s) only, and no loopback, private, link-local,
multicast or reserved addresses unless a network is allowed in settings
(``webhook_allowed_networks``); IPv6 forms of IPv4 addresses are judged by the IPv4
address they carry (``app.webhooks.addresses``).

At submission (``validate_url``) a literal address must be allowed and a name that
resolves must resolve only to allowed addresses; a name that does not resolve (yet:
an offline API host, DNS set up later) is accepted. Before every send (``pin``) the
name is resolved and checked again, and the request goes to the checked address, so a
name that re-resolves elsewhere between the check and the connect (DNS rebinding)
cannot redirect it. The request tries the checked addresses in the resolver's order until
one accepts the connection, as a plain connect to the name would.

The same rules guard a job's ``source_url`` (``app.api.source_fetch``): ``parse_url``,
``host_addresses`` and ``check_addresses`` take the field and the setting to name.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from app.errors import InvalidOptions
from app.webhooks.addresses import Address, Network, refusal

Resolver = Callable[[str, int], list[str]]
MAX_URL_LENGTH = 2048
WEBHOOK_SETTING = "VAS_WEBHOOK_ALLOWED_NETWORKS"


@dataclass(frozen=True)
class Target:
    """Where to send a webhook: the URL as given and the checked addresses to connect to,
    in the resolver's order of preference (never empty)."""

    url: str
    addresses: tuple[str, ...]


def parse_networks(text: str) -> list[Network]:
    """``"127.0.0.0/8, 10.1.0.0/16"`` -> networks; a bad entry raises ValueError."""
    return [ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()]


def resolve(host: str, port: int) -> list[str]:
    """The host's addresses in the resolver's order of preference, without repeats."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def parse_url(url: str, field: str) -> tuple[str, SplitResult, int]:
    """(URL stripped, its parts, its port) of an absolute http(s) URL without credentials;
    else InvalidOptions naming ``field``."""
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise InvalidOptions(f"{field} is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise InvalidOptions(f"{field} is not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidOptions(f"{field} must be an absolute http:// or https:// URL")
    if parts.username or parts.password:
        raise InvalidOptions(f"{field} must not carry credentials")
    return url, parts, port


def literal_address(host: str) -> Address | None:
    """The IP address a host names literally (an IPv6 zone dropped); None for a name."""
    try:
        return ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return None


def check_addresses(
    addresses: Sequence[str], allowed: Sequence[Network], field: str, setting: str = WEBHOOK_SETTING
) -> None:
    """InvalidOptions naming ``field`` unless every address may be reached (``setting`` is
    the environment variable that allows more networks)."""
    for text in addresses:
        reason = refusal(ipaddress.ip_address(text.split("%")[0]), allowed)
        if reason is not None:
            raise InvalidOptions(f"{field} resolves to {reason} (allow its network with {setting})")


def host_addresses(host: str, port: int, resolver: Resolver) -> list[str]:
    """The addresses to check for ``host``: the address it names, or the resolver's answer
    (never empty); TimeoutError, OSError or UnicodeError when it does not resolve."""
    literal = literal_address(host)
    if literal is not None:
        return [str(literal)]
    found = resolver(host, port)
    if not found:
        raise OSError(f"{host!r} resolved to no address")
    return found


def _addresses(host: str, port: int, field: str, resolver: Resolver) -> list[str]:
    try:
        return host_addresses(host, port, resolver)
    except TimeoutError as exc:
        raise InvalidOptions(f"{field} host {host!r} did not resolve in time") from exc
    except (OSError, UnicodeError) as exc:
        raise InvalidOptions(f"{field} host {host!r} does not resolve") from exc


def validate_url(
    url: str, allowed: Sequence[Network] = (), *, field: str = "callback_url", resolver: Resolver = resolve
) -> str:
    """The URL, stripped, if a webhook may be sent there; else InvalidOptions saying why
    (naming ``field``). A name that does not resolve passes: ``pin`` checks it at send time."""
    url, parts, port = parse_url(url, field)
    assert parts.hostname is not None
    try:
        addresses = _addresses(parts.hostname, port, field, resolver)
    except InvalidOptions:  # only a name fails to resolve; a literal address never does
        return url
    check_addresses(addresses, allowed, field)
    return url


def pin(url: str, allowed: Sequence[Network] = (), *, resolver: Resolver = resolve) -> Target:
    """Send-time check: resolve now, refuse unless every address is allowed, and name them
    all (the resolver's preferred first) as the ones to connect to."""
    url, parts, port = parse_url(url, "callback_url")
    assert parts.hostname is not None
    addresses = _addresses(parts.hostname, port, "callback_url", resolver)
    check_addresses(addresses, allowed, "callback_url")
    return Target(url=url, addresses=tuple(address.split("%")[0] for address in addresses))
