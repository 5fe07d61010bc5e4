"""Webhooks end to end: a real HTTP receiver on loopback, signatures, retries with
backoff, the delivery log, durability across a restart, and target validation."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from app.domain import JobError
from app.store.sql import SqlJobStore
from app.webhooks import signing
from app.webhooks.dispatcher import Dispatcher
from app.webhooks.store import WebhookStore
from tests.integration.conftest import Service, assert_problem, submit

pytestmark = pytest.mark.anyio

LOOPBACK = {"webhook_allowed_networks": "127.0.0.0/8", "webhook_backoff_seconds": 0.05}


@dataclass
class Receiver:
    """Answers ``codes`` in turn (then 200) and records every request."""

    codes: list[int] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        self.requests.append((headers, body))
        return self.codes.pop(0) if self.codes else 200


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            code = rec.handle({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/vas?x=1"
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


def dispatcher(service: Service) -> Dispatcher:
    store = service.store
    assert isinstance(store, SqlJobStore)
    return Dispatcher(jobs=store, hooks=WebhookStore(store.engine), settings=service.settings)


def drain(sender: Dispatcher, until: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "webhook not settled in time"
        if not sender.run_once():
            time.sleep(0.02)


async def deliveries(service: Service, job_id: str) -> list[dict[str, Any]]:
    response = await service.client.get(f"/v1/jobs/{job_id}/deliveries")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


@pytest.mark.settings(**LOOPBACK)
async def test_signed_delivery_is_retried_until_accepted(
    service: Service, short_clip: Path, receiver: Receiver
) -> None:
    receiver.codes = [500, 503]
    job = (await submit(service, short_clip, callback_url=receiver.url)).json()
    assert job["callback_url"] == receiver.url
    assert service.new_worker().run_once()
    sender = dispatcher(service)
    drain(sender, lambda: len(receiver.requests) == 3)
    secret = (await service.client.get("/v1/webhook")).json()["secret"]
    bodies = {body for _, body in receiver.requests}
    assert len(bodies) == 1, "every retry sends the same bytes"
    for headers, body in receiver.requests:
        assert headers["content-type"] == "application/json"
        assert headers["x-vas-event"] == "job.succeeded"
        assert signing.verify(secret, headers["x-vas-signature"], headers["x-vas-timestamp"], body)
        assert not signing.verify("wrong", headers["x-vas-signature"], headers["x-vas-timestamp"], body)
    assert len({h["x-vas-delivery"] for h, _ in receiver.requests}) == 1
    document = json.loads(bodies.pop())
    assert document["event"] == "job.succeeded" and document["job"]["id"] == job["id"]
    assert document["job"]["status"] == "succeeded" and document["job"]["progress"] == 1.0

    [log] = await deliveries(service, job["id"])
    assert log["status"] == "delivered" and log["attempts"] == 3 and log["delivered_at"]
    assert [a["status_code"] for a in log["log"]] == [500, 503, 200]
    assert [a["error"] for a in log["log"]] == ["HTTP 500", "HTTP 503", None]
    assert not sender.run_once(), "nothing left to send"
    sender.close()


@pytest.mark.settings(**LOOPBACK, webhook_max_attempts=2)
async def test_gives_up_after_max_attempts_and_logs_connection_errors(
    service: Service, short_clip: Path, receiver: Receiver
) -> None:
    dead = "http://127.0.0.1:9/nothing-listens-here"
    job_id = (await submit(service, short_clip, callback_url=dead)).json()["id"]
    lease = service.store.claim("w", 30)
    assert lease is not None
    service.store.fail(lease, JobError("video_unreadable", "bad"), retryable=False)
    sender = dispatcher(service)
    deadline = time.monotonic() + 10
    while (await deliveries(service, job_id))[0]["status"] == "pending":
        assert time.monotonic() < deadline
        if not sender.run_once():
            time.sleep(0.02)
    [log] = await deliveries(service, job_id)
    assert log["event"] == "job.failed" and log["status"] == "failed" and log["attempts"] == 2
    assert all(a["status_code"] is None and "Connect" in a["error"] for a in log["log"])
    sender.close()


@pytest.mark.settings(**LOOPBACK)
async def test_default_url_per_key_canceled_event_and_opt_out(
    service: Service, short_clip: Path, receiver: Receiver
) -> None:
    settings = await service.client.put("/v1/webhook", json={"default_url": receiver.url})
    assert settings.status_code == 200 and settings.json()["default_url"] == receiver.url
    job = (await submit(service, short_clip)).json()
    assert job["callback_url"] == receiver.url
    none = (await submit(service, short_clip, callback_url="")).json()
    assert none["callback_url"] is None
    await service.client.delete(f"/v1/jobs/{job['id']}")
    await service.client.delete(f"/v1/jobs/{none['id']}")
    sender = dispatcher(service)
    drain(sender, lambda: len(receiver.requests) == 1)
    headers, body = receiver.requests[0]
    assert headers["x-vas-event"] == "job.canceled" and json.loads(body)["job"]["status"] == "canceled"
    assert await deliveries(service, none["id"]) == []

    old = (await service.client.get("/v1/webhook")).json()["secret"]
    rotated = (await service.client.post("/v1/webhook/rotate-secret")).json()["secret"]
    assert rotated != old and rotated.startswith("whsec_")
    cleared = await service.client.put("/v1/webhook", json={"default_url": None})
    assert cleared.json()["default_url"] is None
    sender.close()


@pytest.mark.settings(**LOOPBACK)
async def test_deliveries_survive_a_restart_and_the_worker_sends_them(
    service: Service, short_clip: Path, receiver: Receiver
) -> None:
    receiver.codes = [500]
    job_id = (await submit(service, short_clip, callback_url=receiver.url)).json()["id"]
    await service.client.delete(f"/v1/jobs/{job_id}")
    first = dispatcher(service)
    assert first.run_once() and len(receiver.requests) == 1
    first.close()

    # A new process: fresh store on the same database, the worker's own delivery thread.
    fresh = SqlJobStore(service.settings.resolved_database_url)
    try:
        from app.worker.runner import Worker

        worker = Worker(
            store=fresh,
            blobs=service.app.state.blobs,
            settings=service.settings,
            analyzer_factory=lambda: None,
        )
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while len(receiver.requests) < 2:
            assert time.monotonic() < deadline, "the worker did not retry the delivery"
            time.sleep(0.05)
        worker.stop()
        thread.join(timeout=10)
    finally:
        fresh.close()
    [log] = await deliveries(service, job_id)
    assert log["status"] == "delivered" and [a["status_code"] for a in log["log"]] == [500, 200]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "ftp://example.com/hook",
        "http://user:pass@example.com/hook",
        "not a url",
    ],
)
async def test_private_or_malformed_targets_are_refused(service: Service, short_clip: Path, url: str) -> None:
    response = await submit(service, short_clip, callback_url=url)
    assert_problem(response, 422, "invalid_options")
    assert_problem(await service.client.put("/v1/webhook", json={"default_url": url}), 422, "invalid_options")
    assert service.stored_files() == [], "a refused submission leaves no video behind"


@pytest.mark.settings(**LOOPBACK, auth_enabled=True)
async def test_each_api_key_signs_with_its_own_secret(
    service: Service, short_clip: Path, receiver: Receiver
) -> None:
    keys = service.app.state.keys
    _, first = keys.create_key("acme", "ci")
    _, second = keys.create_key("acme", "laptop")
    secrets = {}
    for key in (first, second):
        headers = {"Authorization": f"Bearer {key}"}
        secrets[key] = (await service.client.get("/v1/webhook", headers=headers)).json()["secret"]
        with short_clip.open("rb") as fh:
            response = await service.client.post(
                "/v1/jobs",
                files={"file": ("a.mp4", fh)},
                data={"callback_url": receiver.url},
                headers=headers,
            )
        assert response.status_code == 202, response.text
        await service.client.delete(f"/v1/jobs/{response.json()['id']}", headers=headers)
    assert secrets[first] != secrets[second]
    assert (await service.client.get("/v1/webhook")).status_code == 401
    sender = dispatcher(service)
    drain(sender, lambda: len(receiver.requests) == 2)
    for (headers, body), key in zip(receiver.requests, (first, second), strict=True):
        ts, sig = headers["x-vas-timestamp"], headers["x-vas-signature"]
        assert signing.verify(secrets[key], sig, ts, body)
        other = second if key == first else first
        assert not signing.verify(secrets[other], sig, ts, body)
    sender.close()
