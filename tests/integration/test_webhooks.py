"""Webhooks end to end: a real HTTP(S) receiver on loopback, the body (the job JSON),
signatures checked by the README's recipe, retries with backoff, the delivery log,
durability across a restart and a job's deletion, target validation and pinning."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.domain import JobError
from app.store.sql import SqlJobStore
from app.store.webhooks import WebhookStore
from app.webhooks import signing
from app.webhooks.dispatcher import Dispatcher
from app.webhooks.urls import Resolver, resolve
from app.worker.runner import Worker
from tests.conftest import skip_or_fail
from tests.integration.conftest import Service, assert_problem, submit
from tests.integration.receivers import Receiver, serving

pytestmark = pytest.mark.anyio

LOOPBACK = {"webhook_allowed_networks": "127.0.0.0/8", "webhook_backoff_seconds": 0.05}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    with serving(rec) as port:
        rec.url = f"http://127.0.0.1:{port}/hooks/vas?x=1"
        yield rec


def readme_verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The receiver-side check exactly as the README documents it."""
    ts = headers["x-vas-timestamp"]
    expected = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    fresh = abs(time.time() - int(ts)) < 300
    return fresh and hmac.compare_digest("v1=" + expected, headers["x-vas-signature"])


def dispatcher(
    service: Service, resolver: Resolver = resolve, ssl_context: ssl.SSLContext | None = None
) -> Dispatcher:
    store = service.store
    assert isinstance(store, SqlJobStore)
    return Dispatcher(
        jobs=store,
        hooks=WebhookStore(store.engine),
        settings=service.settings,
        resolver=resolver,
        ssl_context=ssl_context,
    )


def drain(sender: Dispatcher, until: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "webhook not settled in time"
        if not sender.run_once():
            time.sleep(0.02)


def send_one(sender: Dispatcher, timeout: float = 10.0) -> None:
    """Wait for the next due delivery (retries wait out their backoff) and send it."""
    deadline = time.monotonic() + timeout
    while not sender.run_once():
        assert time.monotonic() < deadline, "no delivery came due in time"
        time.sleep(0.02)


def run_worker_until(worker: Worker, until: Callable[[], bool], failure: str, timeout: float = 10.0) -> None:
    """Run ``worker`` in its own thread, as a worker process would, until ``until()`` holds;
    then stop it."""
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, failure
            time.sleep(0.05)
    finally:
        worker.stop()
        thread.join(timeout=10)


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
        assert readme_verify(secret, headers, body)
        assert not readme_verify("wrong", headers, body)
        assert not readme_verify(secret, headers, body.replace(b"succeeded", b"failed"))
        assert signing.verify(secret, headers["x-vas-signature"], headers["x-vas-timestamp"], body)
    assert len({h["x-vas-delivery"] for h, _ in receiver.requests}) == 1
    document = json.loads(bodies.pop())
    assert document.pop("event") == "job.succeeded"
    assert document.pop("delivery_id") == receiver.requests[0][0]["x-vas-delivery"]
    current = (await service.client.get(f"/v1/jobs/{job['id']}")).json()
    assert document == current, "the body is the job JSON as GET /v1/jobs/{id} returns it"
    assert document["status"] == "succeeded" and document["progress"] == 1.0

    [log] = await deliveries(service, job["id"])
    assert log["id"] == receiver.requests[0][0]["x-vas-delivery"]
    assert log["status"] == "delivered" and log["attempts"] == 3 and log["delivered_at"]
    assert [a["status_code"] for a in log["log"]] == [500, 503, 200]
    assert [a["error"] for a in log["log"]] == ["HTTP 500", "HTTP 503", None]
    assert not sender.run_once(), "nothing left to send"


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
    assert headers["x-vas-event"] == "job.canceled" and json.loads(body)["status"] == "canceled"
    assert await deliveries(service, none["id"]) == []

    old = (await service.client.get("/v1/webhook")).json()["secret"]
    rotated = (await service.client.post("/v1/webhook/rotate-secret")).json()["secret"]
    assert rotated != old and rotated.startswith("whsec_")
    cleared = await service.client.put("/v1/webhook", json={"default_url": None})
    assert cleared.json()["default_url"] is None


@pytest.mark.settings(**LOOPBACK)
async def test_deliveries_survive_a_restart_and_the_worker_sends_them(
    service: Service, short_clip: Path, receiver: Receiver
) -> None:
    receiver.codes = [500]
    job_id = (await submit(service, short_clip, callback_url=receiver.url)).json()["id"]
    await service.client.delete(f"/v1/jobs/{job_id}")
    first = dispatcher(service)
    assert first.run_once() and len(receiver.requests) == 1

    # A new process: fresh store on the same database, the worker's own delivery thread.
    fresh = SqlJobStore(service.settings.resolved_database_url)
    try:
        worker = Worker(
            store=fresh,
            blobs=service.app.state.blobs,
            settings=service.settings,
            analyzer_factory=lambda: None,
        )
        run_worker_until(worker, lambda: len(receiver.requests) >= 2, "the worker did not retry the delivery")
    finally:
        fresh.close()
    [log] = await deliveries(service, job_id)
    assert log["status"] == "delivered" and [a["status_code"] for a in log["log"]] == [500, 200]


@pytest.mark.settings(**LOOPBACK)
async def test_a_deleted_job_still_gets_its_webhook(
    service: Service, short_clip: Path, receiver: Receiver
) -> None:
    """Cancel, then delete the row: the pending delivery (its body rendered when the job
    ended) is still sent by a worker, and goes once it has settled."""
    job_id = (await submit(service, short_clip, callback_url=receiver.url)).json()["id"]
    assert (await service.client.delete(f"/v1/jobs/{job_id}")).status_code == 204
    canceled = (await service.client.get(f"/v1/jobs/{job_id}")).json()
    assert (await service.client.delete(f"/v1/jobs/{job_id}")).status_code == 204
    assert (await service.client.get(f"/v1/jobs/{job_id}")).status_code == 404
    assert_problem(await service.client.get(f"/v1/jobs/{job_id}/deliveries"), 404, "not_found")

    run_worker_until(
        service.new_worker(),
        lambda: bool(receiver.requests),
        "the worker did not send the deleted job's webhook",
    )
    [(headers, body)] = receiver.requests
    document = json.loads(body)
    assert headers["x-vas-event"] == document.pop("event") == "job.canceled"
    assert headers["x-vas-delivery"] == document.pop("delivery_id")
    assert document == canceled
    secret = (await service.client.get("/v1/webhook")).json()["secret"]
    assert readme_verify(secret, headers, body)
    store = service.store
    assert isinstance(store, SqlJobStore)
    assert WebhookStore(store.engine).for_job(job_id) == [], "a settled orphan delivery is removed"


async def test_names_that_do_not_resolve_yet_are_accepted(service: Service, short_clip: Path) -> None:
    """An offline API host (or DNS set up later) must not refuse a callback URL: the name is
    checked before each send instead. Names under .invalid never resolve (RFC 6761)."""
    url = "https://hooks.example.invalid/vas"
    response = await submit(service, short_clip, callback_url=url)
    assert response.status_code == 202, response.text
    assert response.json()["callback_url"] == url
    put = await service.client.put("/v1/webhook", json={"default_url": url})
    assert put.status_code == 200 and put.json()["default_url"] == url


@pytest.mark.settings(**LOOPBACK)
async def test_send_checks_the_name_again_and_connects_to_the_checked_address(
    service: Service, short_clip: Path, receiver: Receiver
) -> None:
    port = receiver.url.split(":")[2].split("/")[0]
    url = f"http://receiver.invalid:{port}/hooks"
    job_id = (await submit(service, short_clip, callback_url=url)).json()["id"]
    await service.client.delete(f"/v1/jobs/{job_id}")

    def unresolvable(host: str, port: int) -> list[str]:
        raise OSError("no such name")

    offline = dispatcher(service, resolver=unresolvable)
    send_one(offline)
    assert receiver.requests == []
    [pending] = await deliveries(service, job_id)
    assert pending["status"] == "pending" and pending["attempts"] == 1
    assert "does not resolve" in pending["log"][0]["error"]

    def rebinding(host: str, port: int) -> list[str]:
        return ["127.0.0.1", "169.254.169.254"] if host == "receiver.invalid" else []

    rebound = dispatcher(service, resolver=rebinding)
    send_one(rebound)
    [refused] = await deliveries(service, job_id)
    assert refused["attempts"] == 2 and "169.254.169.254" in refused["log"][1]["error"]
    assert receiver.requests == []

    pinned = dispatcher(service, resolver=lambda host, port: ["127.0.0.1"])
    drain(pinned, lambda: len(receiver.requests) == 1)
    headers, _ = receiver.requests[0]
    assert headers["host"] == f"receiver.invalid:{port}", "the name travels in Host, the address was pinned"
    [delivered] = await deliveries(service, job_id)
    assert delivered["status"] == "delivered" and delivered["attempts"] == 3


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
    [pending] = await deliveries(service, job_id)
    assert pending["status"] == "pending" and "ConnectError" in pending["log"][0]["error"]

    second = dispatcher(service, resolver=lambda host, port: ["127.0.0.2", "127.0.0.1"])
    drain(second, lambda: len(receiver.requests) == 1)
    assert receiver.requests[0][0]["host"] == f"receiver.invalid:{port}"
    [delivered] = await deliveries(service, job_id)
    assert delivered["status"] == "delivered" and delivered["attempts"] == 2, delivered


@pytest.mark.settings(**LOOPBACK)
async def test_pinned_https_keeps_the_name_for_sni_and_the_certificate(
    service: Service, short_clip: Path, tmp_path: Path
) -> None:
    if shutil.which("openssl") is None:
        skip_or_fail("needs the openssl command")
    name = "receiver.invalid"
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=DNS:{name}", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    sni: list[str | None] = []
    server_tls.sni_callback = lambda sock, server_name, ctx: sni.append(server_name)  # type: ignore[assignment,misc]
    client_tls = ssl.create_default_context(cafile=str(cert))  # trusts the name, not 127.0.0.1
    rec = Receiver()
    with serving(rec, tls=server_tls) as port:
        job_id = (await submit(service, short_clip, callback_url=f"https://{name}:{port}/h")).json()["id"]
        await service.client.delete(f"/v1/jobs/{job_id}")
        sender = dispatcher(
            service,
            resolver=lambda host, port: ["127.0.0.1"],
            ssl_context=client_tls,
        )
        drain(sender, lambda: len(rec.requests) == 1)
    assert sni == [name] and rec.requests[0][0]["host"] == f"{name}:{port}"
    [log] = await deliveries(service, job_id)
    assert log["status"] == "delivered", log


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
    assert "callback_url" in assert_problem(response, 422, "invalid_options")["detail"]
    put = await service.client.put("/v1/webhook", json={"default_url": url})
    assert "default_url" in assert_problem(put, 422, "invalid_options")["detail"]
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
