"""Helpers: API keys for a test service, request headers."""

from __future__ import annotations

from typing import Any

from app.store.keys import KeyStore


def new_key(app: Any, tenant: str, name: str = "") -> str:
    keys: KeyStore = app.state.keys
    _, secret = keys.create_key(tenant, name)
    return secret


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}
