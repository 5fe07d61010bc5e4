"""Security tests drive the same real app as tests/integration (SQLite file, httpx over ASGI)."""

from __future__ import annotations

from tests.integration.conftest import anyio_backend, service  # noqa: F401  (fixtures)
