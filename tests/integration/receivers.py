"""Webhook receivers on loopback for the webhook tests: a well-behaved HTTP(S) one that
answers given status codes, and a raw-socket one that drips its answer's headers one byte
at a time and never finishes them (the slow receiver of issue 12)."""

from __future__ import annotations

import contextlib
import http.server
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Receiver:
    """Answers ``codes`` in turn (then 200) and records every request."""

    codes: list[int] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    arrived_at: list[float] = field(default_factory=list)
    url: str = ""

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        self.arrived_at.append(time.monotonic())
        self.requests.append((headers, body))
        return self.codes.pop(0) if self.codes else 200


@contextlib.contextmanager
def serving(rec: Receiver, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> Iterator[int]:
    """Run ``rec`` on a loopback port (HTTPS with ``tls``); yields the port."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            code = rec.handle({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer((host, 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class DripConnection:
    """One request to the dripping receiver: its headers, when it arrived and, once the
    sender hung up, when (monotonic clock)."""

    headers: dict[str, str]
    arrived_at: float
    closed_at: float | None = None


@dataclass
class Dripping:
    """Reads a request, then sends ``HTTP/1.1 200 OK`` and a header that never ends, one
    byte every ``interval`` seconds, until the sender hangs up (or ``give_up_after``)."""

    interval: float
    give_up_after: float = 30.0
    connections: list[DripConnection] = field(default_factory=list)
    url: str = ""

    def serve(self, conn: socket.socket) -> None:
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                request += chunk
            head = request.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
            headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in head)}
            seen = DripConnection(headers, time.monotonic())
            self.connections.append(seen)
            answer = iter(b"HTTP/1.1 200 OK\r\nX-Drip: " + b"." * 100_000)
            while time.monotonic() - seen.arrived_at < self.give_up_after:
                readable, _, _ = select.select([conn], [], [], self.interval)
                try:
                    if readable and not conn.recv(65536):
                        break  # the sender hung up
                    conn.sendall(bytes([next(answer)]))
                except OSError:
                    break
            seen.closed_at = time.monotonic()


@contextlib.contextmanager
def dripping(rec: Dripping) -> Iterator[int]:
    """Run ``rec`` on a loopback port, a thread per connection; yields the port."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=rec.serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept
        listener.close()
        thread.join(timeout=5)
