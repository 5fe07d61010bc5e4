"""A slow-loris upload: headers and part of the body, then silence. Without a server-side read
timeout it held a request (and its temp file) open for as long as the client liked; only a
proxy in front protected a deployment. Driven over a real socket against uvicorn."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.api.app import create_app
from app.settings import Settings
from tests.integration.conftest import make_settings
from tests.live import serving

READ_TIMEOUT = 1.0
BOUNDARY = "slowloris"


@dataclass
class Server:
    base: str
    settings: Settings

    @property
    def address(self) -> tuple[str, int]:
        url = httpx.URL(self.base)
        assert url.host and url.port
        return url.host, url.port

    def kept_files(self) -> list[str]:
        videos = self.settings.videos_dir
        return sorted(str(p.relative_to(videos)) for p in videos.rglob("*") if p.is_file())


@pytest.fixture
def server(tmp_path: Path, zoo_models_dir: Path) -> Iterator[Server]:
    settings = make_settings(tmp_path, zoo_models_dir, upload_read_timeout_seconds=READ_TIMEOUT)
    with serving(create_app(settings, embedded_worker=False)) as base:
        yield Server(base, settings)


def request_head(content_length: int) -> bytes:
    return (
        "POST /v1/jobs HTTP/1.1\r\nHost: testserver\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {content_length}\r\n\r\n"
    ).encode()


def file_part(data: bytes) -> bytes:
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n\r\n'
    return head.encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def read_until_closed(sock: socket.socket, limit_s: float) -> bytes:
    sock.settimeout(limit_s)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_a_stalled_body_is_408_the_connection_closed_and_nothing_kept(server: Server) -> None:
    body = file_part(b"\0" * 200_000)
    with socket.create_connection(server.address) as sock:
        sock.sendall(request_head(len(body)) + body[:100_000])  # then nothing more
        started = time.monotonic()
        answer = read_until_closed(sock, limit_s=15)  # socket.timeout here: no read timeout
        waited = time.monotonic() - started
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 408 Request Timeout", answer[:300]
    headers, _, payload = rest.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in headers.lower()
    assert b"connection: close" in headers.lower()
    assert json.loads(payload)["code"] == "upload_timeout"
    assert READ_TIMEOUT <= waited < READ_TIMEOUT + 5
    assert server.kept_files() == [], "the partial upload is removed"
    assert httpx.get(f"{server.base}/v1/jobs").json()["items"] == []


def test_a_slow_but_steady_body_is_not_cut_off(server: Server, short_clip: Path) -> None:
    """The timeout is per silence, not per upload: a body trickling in for longer than the
    timeout, with shorter gaps, is accepted."""
    body = file_part(short_clip.read_bytes())
    pieces = 5
    step = len(body) // pieces + 1
    with socket.create_connection(server.address) as sock:
        sock.sendall(request_head(len(body)))
        for start in range(0, len(body), step):
            time.sleep(READ_TIMEOUT / 2.5)
            sock.sendall(body[start : start + step])
        sock.settimeout(30)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 202 "), answer[:300]
