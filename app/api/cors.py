"""CORS for browser apps on other origins (``cors_allow_origins``; empty: no CORS headers).

Credentials (cookies) are never allowed: clients authenticate with an API key header,
which a page must send explicitly, so a hostile page cannot ride on a user's session.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app.settings import Settings

ALLOWED_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE"]  # PUT: /v1/webhook
ALLOWED_HEADERS = ["Authorization", "X-API-Key", "Content-Type", "Idempotency-Key", "Range"]
EXPOSED_HEADERS = ["Location", "Retry-After", "WWW-Authenticate", "Content-Range", "X-Next-Cursor", "Link"]


def allowed_origins(settings: Settings) -> list[str]:
    return [origin.strip().rstrip("/") for origin in settings.cors_allow_origins.split(",") if origin.strip()]


def install_cors(app: FastAPI, settings: Settings) -> None:
    origins = allowed_origins(settings)
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=ALLOWED_METHODS,
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        allow_credentials=False,
        max_age=600,
    )
