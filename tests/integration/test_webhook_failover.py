"""Webhook sends fall back over the checked addresses of a name (a real loopback receiver)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import Service, submit
from tests.integration.test_webhooks import (
    LOOPBACK,
    Receiver,
    deliveries,
    dispatcher,
    drain,
    receiver,
    send_one,
)

pytestmark = pytest.mark.anyio

__all__ = ["receiver"]  # the fixture, shared with test_webhooks


@pytest.mark.settings(**LOOPBACK)
async def test_send_moves_on_to_the_next_checked_address_that_connects(
    service: Service, short_clip: Path, receiver: Receiver
) -> None:
    """The receiver listens on 127.0.0.1 only, so 127.0.0.2 and 127.0.0.3 (allowed, loopback)
    refuse the connection: the send tries the next checked address, as a connect by name would."""
    port = receiver.url.split(":")[2].split("/")[0]
    url = f"http://receiver.invalid:{port}/hooks"
    job_id = (await submit(service, short_clip, callback_url=url)).json()["id"]
    await service.client.delete(f"/v1/jobs/{job_id}")

    unreachable = dispatcher(service, resolver=lambda host, port: ["127.0.0.2", "127.0.0.3"])
    send_one(unreachable)
    unreachable.close()
    [pending] = await deliveries(service, job_id)
    assert pending["status"] == "pending" and "ConnectError" in pending["log"][0]["error"]

    second = dispatcher(service, resolver=lambda host, port: ["127.0.0.2", "127.0.0.1"])
    drain(second, lambda: len(receiver.requests) == 1)
    second.close()
    assert receiver.requests[0][0]["host"] == f"receiver.invalid:{port}"
    [delivered] = await deliveries(service, job_id)
    assert delivered["status"] == "delivered" and delivered["attempts"] == 2, delivered
