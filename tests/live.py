"""An app served over real HTTP by uvicorn in a thread of the test process, for tests that
need real sockets (a stalled upload, a body past the socket buffers) but the app's state."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI

from tests.integration.test_live_server import free_port


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Yield the base URL while uvicorn serves ``app`` (lifespan included) on loopback."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
