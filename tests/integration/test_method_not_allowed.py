"""405 answers name every method the path serves (``Allow``), checked against the routes
themselves: each listed method is served, each unlisted one is a 405."""

from __future__ import annotations

import re

import pytest

from app.api.allowed_methods import METHODS
from tests.integration.conftest import Service, assert_problem

pytestmark = pytest.mark.anyio

PAGES = ["/", "/jobs/x", "/static/style.css", "/favicon.ico", "/docs", "/openapi.json"]


def _allow(header: str) -> list[str]:
    return [method.strip() for method in header.split(",") if method.strip()]


async def test_options_on_a_job_and_the_webhook_lists_all_their_methods(service: Service) -> None:
    job = assert_problem(await service.client.options("/v1/jobs/x"), 405, "method_not_allowed")
    assert job["status"] == 405
    assert (await service.client.options("/v1/jobs/x")).headers["allow"] == "GET, DELETE"
    assert (await service.client.options("/v1/webhook")).headers["allow"] == "GET, PUT"
    assert (await service.client.put("/v1/jobs")).headers["allow"] == "GET, POST"
    assert (await service.client.post("/healthz")).headers["allow"] == "GET, HEAD"


async def test_allow_is_exactly_what_each_path_serves(service: Service) -> None:
    document = (await service.client.get("/openapi.json")).json()
    paths = [re.sub(r"\{[^}]+\}", "x", path) for path in document["paths"]] + PAGES
    for template, path in zip([*document["paths"], *PAGES], paths, strict=True):
        refused = await service.client.options(path)
        assert refused.status_code == 405, (path, refused.text)
        allow = _allow(refused.headers["allow"])
        documented = {m.upper() for m in document["paths"].get(template, {})}
        assert documented <= set(allow), (path, allow, documented)
        for method in METHODS:
            answer = await service.client.request(method, path)
            if method in allow:
                assert answer.status_code != 405, (method, path, answer.text)
            else:
                assert answer.status_code == 405, (method, path, answer.text)
                assert _allow(answer.headers["allow"]) == allow, (method, path)
                if method != "HEAD":  # a HEAD answer has no body
                    assert_problem(answer, 405, "method_not_allowed")
