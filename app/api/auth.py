"""Who is calling: an API key (``Authorization: Bearer <key>`` or ``X-API-Key: <key>``)
names the tenant whose jobs the request may see. Every /v1 route depends on
``authenticate`` (also through ``TenantDep``); FastAPI runs it once per request.

With ``auth_enabled`` off (the embedded default on loopback) every caller is the one
tenant ``default``. Authentication only says who calls: the tenant's request rate is
counted by its own dependency, ``ratelimit.limit_requests``, which runs after this one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from app.api.schemas import RETRY_AFTER_HEADER, problem_response
from app.errors import Unauthorized

if TYPE_CHECKING:
    from app.settings import Settings
    from app.store.keys import KeyStore

DEFAULT_TENANT = "default"
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer vas_...`")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key: `X-API-Key: vas_...`")


@dataclass(frozen=True)
class Principal:
    tenant: str
    key_id: str | None
    """None when authentication is off."""


def startup_notice(settings: Settings) -> tuple[int, str]:
    """(log level, message): what ``serve`` says at start-up about who may call it."""
    if settings.auth_enabled:
        return logging.INFO, "authentication on: /v1 needs an API key (python -m app keys create --tenant T)"
    if settings.host in LOOPBACK_HOSTS:
        return logging.WARNING, "authentication is off: every local client may submit and read jobs"
    return logging.WARNING, (
        f"authentication is off and {settings.host} is not loopback: anyone who can reach it may "
        "submit, read and delete jobs; set VAS_AUTH_ENABLED=true"
    )


def presented_key(bearer: HTTPAuthorizationCredentials | None, api_key: str | None) -> str | None:
    if bearer is not None:
        return bearer.credentials.strip()
    if api_key is not None and api_key.strip():
        return api_key.strip()
    return None


async def authenticate(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Principal:
    settings: Settings = request.app.state.settings
    if settings.auth_enabled:
        secret = presented_key(bearer, api_key)
        if secret is None:
            raise Unauthorized()
        keys: KeyStore = request.app.state.keys
        key = await run_in_threadpool(keys.authenticate, secret)
        if key is None:
            raise Unauthorized("the API key is unknown or revoked", invalid_token=True)
        principal = Principal(tenant=key.tenant, key_id=key.id)
    else:
        principal = Principal(tenant=DEFAULT_TENANT, key_id=None)
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(authenticate)]

AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: problem_response(
        "No, unknown or revoked API key",
        {
            "WWW-Authenticate": {
                "description": 'The Bearer challenge: `Bearer realm="video-analysis"`',
                "required": True,
                "schema": {"type": "string"},
            }
        },
    ),
    429: problem_response("A per-tenant limit was reached (code rate_limited)", RETRY_AFTER_HEADER),
}
