"""A live server on loopback (uvicorn in a thread, embedded worker) and headless Chromium.

The browser is Debian's ``chromium`` driven by Playwright's Python package through
``executable_path``: Playwright never downloads a browser here.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.settings import Settings
from tests.conftest import REPO, skip_or_fail
from tests.integration.conftest import anyio_backend, make_settings, service, shared_analyzer
from tests.live import serving

__all__ = ["anyio_backend", "service"]  # fixtures shared with tests/integration

ARTIFACTS = REPO / "test-artifacts"
DEMO_MODELS = REPO / "models"


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


@dataclass
class LiveServer:
    base: str
    settings: Settings
    model: str


@pytest.fixture
def live_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    from app.api.app import create_app

    marker = request.node.get_closest_marker("settings")
    overrides: dict[str, Any] = dict(marker.kwargs) if marker else {}
    model = "demo_motion"  # committed (models/DEMO_MODEL.md); tests/known_answer checks it is there
    values: dict[str, Any] = {"default_model": model, "poll_interval": 0.1, **overrides}
    settings = make_settings(tmp_path, DEMO_MODELS, **values)
    app = create_app(settings, embedded_worker=True, analyzer_factory=lambda: shared_analyzer(settings))
    with serving(app) as base:
        yield LiveServer(base, settings, model)


@pytest.fixture
def browser_page(request: pytest.FixtureRequest) -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        skip_or_fail("no chromium on PATH (install Debian's package: apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is missing")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=executable,
            headless=True,
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
        )
        page = browser.new_page(viewport={"width": 1200, "height": 1400})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.console_errors = errors
        try:
            yield page
        finally:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
            browser.close()
