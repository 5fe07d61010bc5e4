"""Build the job store from settings: the single place that picks URL and pool size."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from app.settings import Settings
from app.store.base import JobStore
from app.store.engine import build_engine
from app.store.keys import SqlKeyStore
from app.store.sql import SqlJobStore
from app.store.usage import SqlUsageStore

if TYPE_CHECKING:
    from app.store.renders import RenderStore
    from app.store.webhooks import WebhookStore


def open_store(settings: Settings, *, clock: Callable[[], float] = time.time) -> SqlJobStore:
    """A store for ``settings.resolved_database_url`` (SQLite file by default).

    Does not migrate: run ``app.store.migrate.upgrade`` first (``vas migrate``, or the
    start-up hook); ``migrations_current()`` tells readiness checks whether that happened."""
    return SqlJobStore(settings.resolved_database_url, pool_size=settings.db_pool_size, clock=clock)


def _engine_of(settings: Settings, store: JobStore) -> Engine:
    if isinstance(store, SqlJobStore):
        return store.engine
    return build_engine(settings.resolved_database_url, pool_size=settings.db_pool_size)


def open_webhook_store(settings: Settings, store: JobStore) -> WebhookStore:
    """Webhook owners and deliveries, in the job store's database (its pool when SQL)."""
    from app.store.webhooks import WebhookStore

    return WebhookStore(_engine_of(settings, store))


def open_render_store(settings: Settings, store: JobStore) -> RenderStore:
    """Annotated-video render requests, in the job store's database."""
    from app.store.renders import RenderStore

    return RenderStore(_engine_of(settings, store), max_attempts=settings.render_max_attempts)


def open_access_stores(settings: Settings, store: JobStore) -> tuple[SqlKeyStore, SqlUsageStore]:
    """API keys and usage counters, in the job store's database (sharing its connection
    pool when it is a ``SqlJobStore``)."""
    if isinstance(store, SqlJobStore):
        engine = store.engine
    else:
        engine = build_engine(settings.resolved_database_url, pool_size=settings.db_pool_size)
    return SqlKeyStore(engine), SqlUsageStore(engine)
