"""Issue 12, item 5: IPv6 forms of refused IPv4 addresses (NAT64, 6to4, IPv4-compatible,
IPv4-mapped, IPv4-translated, Teredo) are refused as webhook targets, at submission (a literal
in the URL, or a name whose AAAA answer is one) and at send time (``pin``, and a real send
that never reaches the receiver); genuine public IPv6, and these forms of public IPv4, pass."""

from __future__ import annotations

import ipaddress
import re
import time
from pathlib import Path

import pytest

from app.errors import InvalidOptions
from app.store.sql import SqlJobStore
from app.store.webhooks import WebhookStore
from app.webhooks.dispatcher import Dispatcher
from app.webhooks.urls import parse_networks, pin, validate_url
from tests.integration.conftest import Service, assert_problem, submit

pytestmark = pytest.mark.anyio


def teredo(server: str, client: str) -> str:
    """A Teredo address (2001::/32): server IPv4, then the client IPv4 inverted (obfuscated)."""
    value = (0x20010000 << 96) | (int(ipaddress.IPv4Address(server)) << 64)
    return str(ipaddress.IPv6Address(value | (~int(ipaddress.IPv4Address(client)) & 0xFFFFFFFF)))


REFUSED = {
    "NAT64 of 169.254.169.254": "64:ff9b::a9fe:a9fe",
    "NAT64 of 127.0.0.1": "64:ff9b::7f00:1",
    "NAT64 of 10.0.0.1": "64:ff9b::10.0.0.1",
    "NAT64 local-use, loopback": "64:ff9b:1::7f00:1",
    "NAT64 local-use, whatever it embeds": "64:ff9b:1::8.8.8.8",
    "6to4 of 127.0.0.1": "2002:7f00:1::",
    "6to4 of 169.254.169.254": "2002:a9fe:a9fe::1",
    "IPv4-compatible 127.0.0.1": "::127.0.0.1",
    "IPv4-compatible 192.168.1.1": "::c0a8:101",
    "IPv4-mapped 127.0.0.1": "::ffff:127.0.0.1",
    "IPv4-mapped 169.254.169.254": "::ffff:a9fe:a9fe",
    "IPv4-translated 127.0.0.1": "::ffff:0:7f00:1",
    "Teredo, loopback client": teredo("65.54.227.120", "127.0.0.1"),
    "Teredo, metadata client": teredo("65.54.227.120", "169.254.169.254"),
    "Teredo, private server": teredo("10.0.0.1", "8.8.8.8"),
    "IPv6 loopback": "::1",
}
PUBLIC = {
    "public IPv6": "2606:4700:4700::1111",
    "NAT64 of 8.8.8.8": "64:ff9b::808:808",
    "6to4 of 8.8.8.8": "2002:808:808::1",
    "IPv4-mapped 8.8.8.8": "::ffff:8.8.8.8",
    "Teredo, public server and client": teredo("65.54.227.120", "8.8.8.8"),
}


@pytest.mark.parametrize("address", REFUSED.values(), ids=REFUSED.keys())
def test_ipv6_forms_of_refused_addresses_are_refused_everywhere(address: str) -> None:
    with pytest.raises(InvalidOptions, match=r"loopback/private/reserved|NAT64 local-use"):
        validate_url(f"http://[{address}]:8080/hook")
    with pytest.raises(InvalidOptions):
        validate_url("https://hooks.example.test/hook", resolver=lambda host, port: [address])
    with pytest.raises(InvalidOptions, match=re.escape(str(ipaddress.ip_address(address)))):
        pin("https://hooks.example.test/hook", resolver=lambda host, port: ["93.184.216.34", address])


@pytest.mark.parametrize("address", PUBLIC.values(), ids=PUBLIC.keys())
def test_public_ipv6_and_wrapped_public_ipv4_pass(address: str) -> None:
    assert validate_url(f"https://[{address}]/hook") == f"https://[{address}]/hook"
    url = "https://hooks.example.test/hook"
    assert validate_url(url, resolver=lambda host, port: [address]) == url
    assert pin(url, resolver=lambda host, port: [address]).addresses == (address,)


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("::ffff:127.0.0.1", "127.0.0.0/8"),  # the embedded IPv4 is judged by the IPv4 rules
        ("64:ff9b::a00:1", "10.0.0.0/8"),
        ("fd00::1", "fd00::/8"),
        ("64:ff9b:1::7f00:1", "64:ff9b:1::/48"),
    ],
)
def test_allowed_networks_cover_the_ipv4_an_address_carries(address: str, allowed: str) -> None:
    networks = parse_networks(allowed)
    with pytest.raises(InvalidOptions):
        pin("http://hooks.example.test/", resolver=lambda host, port: [address])
    assert pin("http://hooks.example.test/", networks, resolver=lambda host, port: [address]).addresses == (
        address,
    )


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::a9fe:a9fe",
        "2002:7f00:1::",
        "::127.0.0.1",
        "::ffff:127.0.0.1",
        REFUSED["Teredo, loopback client"],
    ],
)
async def test_submission_and_default_url_refuse_them(
    service: Service, short_clip: Path, address: str
) -> None:
    url = f"http://[{address}]/hook"
    response = await submit(service, short_clip, callback_url=url)
    assert "callback_url" in assert_problem(response, 422, "invalid_options")["detail"]
    put = await service.client.put("/v1/webhook", json={"default_url": url})
    assert "default_url" in assert_problem(put, 422, "invalid_options")["detail"]


async def test_a_send_to_a_name_with_such_an_aaaa_answer_is_refused_and_logged(
    service: Service, short_clip: Path
) -> None:
    """The name did not resolve at submission (so it was accepted); at send time its answer
    is the NAT64 form of the metadata address: no connection, the attempt logs why."""
    url = "http://receiver.invalid:8080/hooks"
    job_id = (await submit(service, short_clip, callback_url=url)).json()["id"]
    await service.client.delete(f"/v1/jobs/{job_id}")
    store = service.store
    assert isinstance(store, SqlJobStore)
    sender = Dispatcher(
        jobs=store,
        hooks=WebhookStore(store.engine),
        settings=service.settings,
        resolver=lambda host, port: ["64:ff9b::a9fe:a9fe"],
    )
    deadline = time.monotonic() + 10
    while not sender.run_once():
        assert time.monotonic() < deadline, "the delivery did not come due"
        time.sleep(0.02)
    [delivery] = WebhookStore(store.engine).for_job(job_id)
    assert delivery.status.value == "pending" and delivery.attempts == 1
    [attempt] = delivery.log
    assert attempt.status_code is None and attempt.error is not None
    assert "64:ff9b::a9fe:a9fe" in attempt.error and "169.254.169.254" in attempt.error
