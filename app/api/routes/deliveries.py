"""Webhooks from the client's side: a job's delivery log, and the caller's webhook
settings (signing secret, default callback URL), kept per API key."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from app.api.auth import PrincipalDep
from app.api.deps import SettingsDep, StoreDep, TenantDep
from app.api.schemas import PROBLEM_RESPONSES
from app.domain import DeliveryStatus
from app.errors import NotFound
from app.settings import Settings
from app.store.webhooks import Delivery, WebhookStore, owner_id
from app.webhooks import signing
from app.webhooks.urls import parse_networks, validate_url

router = APIRouter(tags=["webhooks"])


class AttemptOut(BaseModel):
    attempt: int
    at: datetime
    duration_ms: float
    status_code: int | None
    error: str | None


class DeliveryOut(BaseModel):
    id: str
    event: str
    url: str
    status: str = Field(description="pending (will be retried), delivered or failed")
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    log: list[AttemptOut]


class DeliveryList(BaseModel):
    items: list[DeliveryOut]


class WebhookSettingsOut(BaseModel):
    default_url: str | None = Field(description="Used for jobs submitted without callback_url")
    secret: str = Field(description="HMAC-SHA256 key for the signature header")
    signature_header: str = signing.SIGNATURE_HEADER
    timestamp_header: str = signing.TIMESTAMP_HEADER
    signed_content: str = "<timestamp>.<raw body>"


class WebhookSettingsIn(BaseModel):
    default_url: str | None = Field(default=None, max_length=2048)


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=UTC)


def delivery_out(d: Delivery) -> DeliveryOut:
    return DeliveryOut(
        id=d.id,
        event=d.event,
        url=d.url,
        status=d.status.value,
        attempts=d.attempts,
        next_attempt_at=_ts(d.next_attempt_at) if d.status is DeliveryStatus.PENDING else None,
        last_status_code=d.last_status_code,
        last_error=d.last_error,
        created_at=datetime.fromtimestamp(d.created_at, tz=UTC),
        delivered_at=_ts(d.delivered_at),
        log=[
            AttemptOut(
                attempt=a.attempt,
                at=datetime.fromtimestamp(a.started_at, tz=UTC),
                duration_ms=a.duration_ms,
                status_code=a.status_code,
                error=a.error,
            )
            for a in d.log
        ],
    )


def hooks_of(request: Request) -> WebhookStore:
    hooks: WebhookStore = request.app.state.webhooks
    return hooks


def check_url(url: str, settings: Settings, field: str = "callback_url") -> str:
    """Validation that resolves DNS: call it from a worker thread. ``field`` names the
    request field in error messages."""
    return validate_url(url, parse_networks(settings.webhook_allowed_networks), field=field)


async def resolve_callback(request: Request, raw: str | None) -> tuple[str | None, str | None]:
    """(callback URL, owner) for a submission: the form's ``callback_url``, else the key's
    default; an empty form value means none. Ensures the owner has a signing secret."""
    settings: Settings = request.app.state.settings
    principal = request.state.principal
    owner = owner_id(principal.tenant, principal.key_id)
    hooks = hooks_of(request)
    url = (raw or "").strip() or None
    if raw is None:
        found = await run_in_threadpool(hooks.get_owner, owner)
        url = found.default_url if found else None
    if url is None:
        return None, None
    url = await run_in_threadpool(check_url, url, settings)
    await run_in_threadpool(hooks.ensure_owner, owner)
    return url, owner


@router.get(
    "/v1/jobs/{job_id}/deliveries",
    response_model=DeliveryList,
    responses=PROBLEM_RESPONSES,
    tags=["jobs"],
    summary="The job's webhook deliveries and every attempt",
    description=signing.DESCRIPTION,
)
def list_deliveries(request: Request, job_id: str, store: StoreDep, tenant: TenantDep) -> DeliveryList:
    job = store.get_job(job_id, tenant)
    if job is None:
        raise NotFound(f"no job with id {job_id[:64]!r}")
    return DeliveryList(items=[delivery_out(d) for d in hooks_of(request).for_job(job.id)])


@router.get(
    "/v1/webhook",
    response_model=WebhookSettingsOut,
    summary="Your webhook secret and default URL",
    description=signing.DESCRIPTION,
)
def get_webhook(request: Request, principal: PrincipalDep) -> WebhookSettingsOut:
    owner = hooks_of(request).ensure_owner(owner_id(principal.tenant, principal.key_id))
    return WebhookSettingsOut(default_url=owner.default_url, secret=owner.secret)


@router.put(
    "/v1/webhook",
    response_model=WebhookSettingsOut,
    responses=PROBLEM_RESPONSES,
    summary="Set (or clear, with null) the default callback URL of your API key",
    description="The URL is checked like a job's `callback_url`: http(s) only, no credentials, and "
    "neither a literal nor a resolved loopback/private/link-local/reserved address (unless "
    "`VAS_WEBHOOK_ALLOWED_NETWORKS` allows it). A name that does not resolve yet is accepted "
    "and checked again before every send.\n\n" + signing.DESCRIPTION,
)
def put_webhook(
    request: Request, body: WebhookSettingsIn, principal: PrincipalDep, settings: SettingsDep
) -> WebhookSettingsOut:
    url = check_url(body.default_url, settings, "default_url") if body.default_url else None
    owner = hooks_of(request).update_owner(
        owner_id(principal.tenant, principal.key_id), default_url=url, set_url=True
    )
    return WebhookSettingsOut(default_url=owner.default_url, secret=owner.secret)


@router.post(
    "/v1/webhook/rotate-secret",
    response_model=WebhookSettingsOut,
    summary="Replace your signing secret (pending retries are signed with the new one)",
)
def rotate_secret(request: Request, principal: PrincipalDep) -> WebhookSettingsOut:
    owner = hooks_of(request).update_owner(owner_id(principal.tenant, principal.key_id), rotate=True)
    return WebhookSettingsOut(default_url=owner.default_url, secret=owner.secret)
