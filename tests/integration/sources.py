"""A video host on loopback for the ``source_url`` tests: a threaded ``http.server`` that
serves real bytes in the ways a server may (with a length, chunked, redirected, slowly,
refused) and records every request it got."""

from __future__ import annotations

import contextlib
import http.server
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Route = Callable[[http.server.BaseHTTPRequestHandler], None]


@dataclass
class Source:
    """Routes by path (the query is ignored) and the requests that arrived: (path, headers)."""

    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    base: str = ""

    def url(self, path: str) -> str:
        return self.base + path

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]


def body(data: bytes, content_type: str = "video/mp4") -> Route:
    """200 with a Content-Length."""

    def send(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return send


def chunked(data: bytes, *, forever: bool = False, chunk: int = 64 * 1024) -> Route:
    """200 with ``Transfer-Encoding: chunked`` and no length; ``forever``: ``data`` again and
    again until the client hangs up."""

    def send(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "video/mp4")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        with contextlib.suppress(OSError):
            while True:
                for start in range(0, len(data), chunk):
                    part = data[start : start + chunk]
                    handler.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                if not forever:
                    break
            handler.wfile.write(b"0\r\n\r\n")

    return send


def declared(length: int, sent: bytes, then_wait: float) -> Route:
    """Declares ``length`` bytes, sends ``sent`` and waits (a fetch that trusts the
    declaration has hung up by then)."""

    def send(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(length))
        handler.end_headers()
        with contextlib.suppress(OSError):
            handler.wfile.write(sent)
            handler.wfile.flush()
            time.sleep(then_wait)

    return send


def dripping(data: bytes, every: float) -> Route:
    """The whole length declared, then one byte every ``every`` seconds."""

    def send(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        with contextlib.suppress(OSError):
            for i in range(len(data)):
                handler.wfile.write(data[i : i + 1])
                handler.wfile.flush()
                time.sleep(every)

    return send


def status(code: int) -> Route:
    def send(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(code)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return send


def redirect(location: str, code: int = 302) -> Route:
    def send(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(code)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return send


def self_signed(folder: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext, list[str | None]]:
    """A certificate for ``name`` (openssl): the server's context, a client context that
    trusts it (for the name, not for 127.0.0.1), and the SNI names the server is sent."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subj = ["-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"]
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", *subj]
    subprocess.run([*command, "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    sni: list[str | None] = []
    server.sni_callback = lambda sock, server_name, ctx: sni.append(server_name)  # type: ignore[assignment,misc]
    return server, ssl.create_default_context(cafile=str(cert)), sni


@contextlib.contextmanager
def hosting(source: Source, tls: ssl.SSLContext | None = None) -> Iterator[Source]:
    """Serve ``source`` on a loopback port (HTTP/1.1, a thread per request; HTTPS with ``tls``)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            source.requests.append((path, {k.lower(): v for k, v in self.headers.items()}))
            source.routes.get(path, status(404))(self)
            self.close_connection = True

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    source.base = f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"
    try:
        yield source
    finally:
        server.shutdown()
        server.server_close()
