"""Which IP addresses a webhook may reach: public ones, and those in an allowed network.

An IPv6 address that carries an IPv4 address a packet ends up at (NAT64, 6to4, IPv4-mapped,
IPv4-compatible, IPv4-translated, Teredo) is judged by that IPv4 address, because a gateway,
a relay or the host's own dual-stack socket delivers it there: ``[64:ff9b::a9fe:a9fe]`` is
169.254.169.254, although Python 3.11's ``is_global`` calls that IPv6 address public. The
NAT64 local-use prefix places its IPv4 address where the operator chose, so it is refused
unless allowed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: IPv4 in the last 32 bits
NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215: IPv4 where the operator puts it
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # RFC 4291 (deprecated): IPv4 in the last 32 bits
IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765 (SIIT): IPv4 in the last 32 bits
_LAST_32_BITS = (NAT64_WELL_KNOWN, IPV4_COMPATIBLE, IPV4_TRANSLATED)
_UNSPECIFIED_AND_LOOPBACK = ipaddress.IPv6Network("::/127")  # IPv6's own, not IPv4-compatible


def embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses that traffic to ``address`` reaches by a standard translation or
    tunnel (for Teredo: its server and its de-obfuscated client); empty for a plain IPv6."""
    if address.ipv4_mapped is not None:
        return (address.ipv4_mapped,)
    if address.sixtofour is not None:
        return (address.sixtofour,)
    if address.teredo is not None:
        return address.teredo
    if address in _UNSPECIFIED_AND_LOOPBACK:
        return ()
    if any(address in prefix for prefix in _LAST_32_BITS):
        return (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF),)
    return ()


def _public(address: Address) -> bool:
    return address.is_global and not address.is_multicast


def _allowed(address: Address, allowed: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in allowed)


def refusal(address: Address, allowed: Sequence[Network] = ()) -> str | None:
    """Why a webhook may not go to ``address`` (None when it may): not public and not in an
    ``allowed`` network, itself or through the IPv4 address it carries."""
    if _allowed(address, allowed):
        return None
    if isinstance(address, ipaddress.IPv6Address):
        carried = embedded_ipv4(address)
        if carried:
            for inner in carried:
                if not _public(inner) and not _allowed(inner, allowed):
                    return f"{address} (which reaches {inner}), a loopback/private/reserved address"
            return None
        if address in NAT64_LOCAL_USE:
            return f"{address}, a NAT64 local-use address whose IPv4 target cannot be checked"
    if not _public(address):
        return f"{address}, a loopback/private/reserved address"
    return None
