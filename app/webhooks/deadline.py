"""One wall-clock deadline for a whole webhook send: name lookup, connect, TLS handshake,
writing the request and every read of the answer.

A timeout per operation is not enough: a receiver that drips one header byte just inside it
keeps a send going for ever, past its claim lock, so the attempt is never recorded and another
sender sends the same delivery again. ``DeadlineBackend`` is an httpcore network backend that
gives each socket operation only the time left before the deadline (a single ``recv`` returns
at its first byte, a TLS handshake or read is bounded as a whole by CPython), and fails with
httpcore's timeout errors once it has passed. ``resolve_within`` bounds the blocking
``getaddrinfo``, which no socket timeout covers.
"""

from __future__ import annotations

import threading
import time
import typing
from collections.abc import Callable, Iterable
from ssl import SSLContext

import httpcore

from app.webhooks.urls import Resolver

WRITE_CHUNK_BYTES = 64 * 1024


class Deadline:
    """A point on the monotonic clock; ``left`` is the time that remains for one operation."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.at = clock() + seconds

    def remaining(self) -> float:
        return self.at - self._clock()

    def left(self, timeout: float | None, error: type[httpcore.TimeoutException]) -> float:
        """``timeout`` cut down to the time left; ``error`` when none is left."""
        remaining = self.remaining()
        if remaining <= 0:
            raise error("the send's deadline passed")
        return remaining if timeout is None else min(timeout, remaining)


class DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, deadline: Deadline) -> None:
        self._inner, self._deadline = inner, deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        # In chunks: the inner write sends its whole buffer, each send with the full timeout.
        for start in range(0, len(buffer), WRITE_CHUNK_BYTES):
            chunk = buffer[start : start + WRITE_CHUNK_BYTES]
            self._inner.write(chunk, self._deadline.left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        left = self._deadline.left(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, left), self._deadline)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's own socket backend, every operation bounded by ``deadline``."""

    def __init__(self, deadline: Deadline, inner: httpcore.NetworkBackend | None = None) -> None:
        self._deadline = deadline
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        left = self._deadline.left(timeout, httpcore.ConnectTimeout)
        stream = self._inner.connect_tcp(host, port, left, local_address, socket_options)
        return DeadlineStream(stream, self._deadline)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def resolve_within(resolver: Resolver, deadline: Deadline) -> Resolver:
    """``resolver`` bounded by ``deadline``: a lookup still running then raises TimeoutError
    (its thread is left to finish on its own; getaddrinfo cannot be interrupted)."""

    def bounded(host: str, port: int) -> list[str]:
        answer: list[list[str]] = []
        failure: list[BaseException] = []

        def lookup() -> None:
            try:
                answer.append(resolver(host, port))
            except BaseException as exc:  # handed to the waiting thread
                failure.append(exc)

        thread = threading.Thread(target=lookup, name="webhook-resolve", daemon=True)
        thread.start()
        thread.join(max(0.0, deadline.remaining()))
        if failure:
            raise failure[0]
        if not answer:
            raise TimeoutError(f"{host!r} did not resolve before the send's deadline")
        return answer[0]

    return bounded
