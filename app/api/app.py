"""The FastAPI application factory. Nothing happens at import; ``create_app`` wires it up."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi_offline import FastAPIOffline

from app import __version__
from app.api import problems
from app.api.auth import AUTH_RESPONSES, authenticate
from app.api.cors import install_cors
from app.api.drain import DrainMiddleware
from app.api.ratelimit import TenantLimiter, limit_requests
from app.api.routes import deliveries, events, explanations, health, jobs, media, metrics, models, pages
from app.blobs import BlobStore, LocalBlobStore
from app.metrics import Metrics
from app.settings import Settings
from app.store.base import JobStore

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    store: JobStore | None = None,
    blobs: BlobStore | None = None,
    embedded_worker: bool | None = None,
    analyzer_factory: Callable[[], Any] | None = None,
) -> FastAPI:
    """Build the API. With ``embedded_worker`` (default: settings), a worker thread runs
    in this process; the API itself never imports torch (the worker does, lazily)."""
    from app.analysis.catalog import load_catalog
    from app.analysis.probe_sandbox import ProbeLimits, ProbeSandbox
    from app.store.factory import open_access_stores, open_render_store, open_store, open_webhook_store

    own_store = store is None
    run_worker = settings.embedded_worker if embedded_worker is None else embedded_worker

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker_thread = None
        try:  # inside: a failing worker set-up still closes the warmed prober (and the store)
            app.state.prober.warm()
            if run_worker:
                worker = _embedded_worker(app, settings, analyzer_factory)
                worker_thread = threading.Thread(target=worker.run, name="embedded-worker", daemon=True)
                worker_thread.start()
                app.state.worker = worker
            yield
        finally:
            app.state.draining = True
            if worker_thread is not None:
                app.state.worker.stop()
                worker_thread.join(timeout=settings.lease_seconds)
            app.state.prober.close()
            if own_store:
                app.state.store.close()

    # /docs loads Swagger UI from this service (/static-offline-docs), not a CDN: it works
    # air-gapped. No ReDoc: its page fetches a logo from redocly's CDN (pages.py redirects).
    app = FastAPIOffline(
        title="Video analysis service",
        version=__version__,
        description="Upload a video, get per-segment action labels from PyTorchVideo model-zoo classifiers.",
        lifespan=lifespan,
        redoc_url=None,
        favicon_url="/favicon.ico",
    )
    app.state.settings = settings
    app.state.store = store or open_store(settings)
    app.state.blobs = blobs or LocalBlobStore(settings.videos_dir)
    app.state.catalog = load_catalog(settings.models_dir)
    app.state.job_submitted = threading.Event()
    app.state.draining = False
    app.state.metrics = Metrics()
    app.state.keys, usage = open_access_stores(settings, app.state.store)
    app.state.webhooks = open_webhook_store(settings, app.state.store)
    app.state.renders = open_render_store(settings, app.state.store)
    app.state.limiter = TenantLimiter(settings, usage, app.state.store)
    app.state.prober = ProbeSandbox(ProbeLimits.from_settings(settings))  # FFmpeg never runs in the API
    app.add_middleware(DrainMiddleware, state=app.state)
    install_cors(app, settings)
    problems.install(app)
    # Every /v1 route: who calls (401), then how often (429); FastAPI runs each once per request.
    # Probes, metrics and pages are neither. (The order of inclusion is the OpenAPI paths' order.)
    v1 = [Depends(authenticate), Depends(limit_requests)]
    app.include_router(jobs.router, dependencies=v1, responses=AUTH_RESPONSES)
    app.include_router(models.router, dependencies=v1, responses=AUTH_RESPONSES)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(media.router, dependencies=v1, responses=AUTH_RESPONSES)
    app.include_router(explanations.router, dependencies=v1, responses=AUTH_RESPONSES)
    app.include_router(events.router, dependencies=v1, responses=AUTH_RESPONSES)
    app.include_router(deliveries.router, dependencies=v1, responses=AUTH_RESPONSES)
    app.include_router(pages.router)
    return app


def _embedded_worker(app: FastAPI, settings: Settings, analyzer_factory: Callable[[], Any] | None) -> Any:
    from app.worker.multi import worker_class

    def default_factory() -> Any:
        from app.analysis.engine import Analyzer

        return Analyzer.from_settings(settings)

    return worker_class(settings)(
        store=app.state.store,
        blobs=app.state.blobs,
        settings=settings,
        analyzer_factory=analyzer_factory or default_factory,
        wake=app.state.job_submitted,
        metrics=app.state.metrics,
    )
