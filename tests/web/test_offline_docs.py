"""/docs with the network closed: Chromium resolves no host name but the service's own, and
the page may not send one request elsewhere; Swagger UI must still render every operation
(it used to load from a CDN: a blank page offline). /redoc redirects there."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import skip_or_fail
from tests.web.conftest import ARTIFACTS, LiveServer, chromium_path

# Not localhost: Swagger UI skips some outside calls (the validator badge) for local specs.
SERVICE_HOST = "vas.test"


@pytest.fixture
def offline_page(
    live_server: LiveServer, request: pytest.FixtureRequest
) -> Iterator[tuple[Any, str, list[str]]]:
    """A page that can reach only the live server (as http://vas.test:PORT); every request
    for anywhere else is aborted and recorded."""
    executable = chromium_path()
    if executable is None:
        skip_or_fail("no chromium on PATH (install Debian's package: apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is missing")
    port = urlsplit(live_server.base).port
    base = f"http://{SERVICE_HOST}:{port}"
    rules = f"MAP {SERVICE_HOST} 127.0.0.1, MAP * ~NOTFOUND"
    outside: list[str] = []

    def only_the_service(route: Any) -> None:
        if route.request.url.startswith(base + "/") or route.request.url.startswith("data:"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort("internetdisconnected")

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox", f"--host-resolver-rules={rules}"]
        )
        context = browser.new_context(viewport={"width": 1200, "height": 1400}, service_workers="block")
        context.route("**/*", only_the_service)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.console_errors = errors
        try:
            yield page, base, outside
        finally:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
            browser.close()


def _operations(live_server: LiveServer) -> dict[str, tuple[str, str]]:
    """operationId: (METHOD, path), from the service's OpenAPI document."""
    document = httpx.get(f"{live_server.base}/openapi.json").json()
    return {
        op["operationId"]: (method.upper(), path)
        for path, ops in document["paths"].items()
        for method, op in ops.items()
    }


def test_swagger_ui_renders_every_operation_offline(
    live_server: LiveServer, offline_page: tuple[Any, str, list[str]]
) -> None:
    page, base, outside = offline_page
    operations = _operations(live_server)
    page.goto(base + "/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    shown = page.eval_on_selector_all(
        ".opblock",
        "blocks => blocks.map(b => [b.querySelector('.opblock-summary-method').textContent,"
        " b.querySelector('.opblock-summary-path').dataset.path])",
    )
    assert {tuple(op) for op in shown} == set(operations.values())  # one with two tags shows twice
    assert "Video analysis service" in page.locator(".info .title").inner_text()
    # An operation opens and shows its parameters (the UI works, not only its skeleton).
    page.click(".opblock-get .opblock-summary-path[data-path='/v1/jobs/{job_id}']")
    page.wait_for_selector(".opblock.is-open .parameters-container", timeout=10_000)
    assert not outside, outside
    assert not page.console_errors, page.console_errors


def test_redoc_links_land_on_the_offline_swagger_ui(
    live_server: LiveServer, offline_page: tuple[Any, str, list[str]]
) -> None:
    """ReDoc is not served (its page fetches a logo from a CDN even offline); /redoc redirects."""
    page, base, outside = offline_page
    page.goto(base + "/redoc")
    page.wait_for_selector(".opblock", timeout=30_000)
    assert page.url == base + "/docs"
    assert not outside, outside
    assert not page.console_errors, page.console_errors
