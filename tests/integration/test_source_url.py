"""Videos by URL (issue 15): ``POST /v1/jobs`` with a ``source_url`` instead of a file. The
video host is a real HTTP server on loopback (``tests.integration.sources``) serving a
PyAV-made mp4; the fetch follows the webhook rules (loopback is refused unless allowed by
``source_url_allowed_networks``; each redirect checked, at most 3), the upload limits, one
deadline, and a failure leaves no blob and no row."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.api.app import create_app
from app.api.source_fetch import fetch
from app.api.upload import Discard
from app.errors import InvalidSourceUrl, SourceUnreachable
from app.webhooks.urls import parse_networks
from tests.conftest import REPO, skip_or_fail
from tests.integration.conftest import Service, assert_problem, make_settings, shared_analyzer
from tests.integration.sources import (
    Source,
    body,
    chunked,
    declared,
    dripping,
    hosting,
    redirect,
    self_signed,
    status,
)
from tests.live import serving
from tests.media import write_video

pytestmark = pytest.mark.anyio

LOOPBACK = "127.0.0.1/32"
ALLOWED = {"source_url_allowed_networks": LOOPBACK}


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("source") / "walk.mp4"
    return write_video(path, seconds=2.0, fps=15, width=96, height=72).read_bytes()


@pytest.fixture
def source(clip_bytes: bytes) -> Iterator[Source]:
    routes = {
        "/clips/walk.mp4": body(clip_bytes),
        "/chunked/walk.mp4": chunked(clip_bytes),
        "/endless.mp4": chunked(clip_bytes, forever=True),
        "/huge.mp4": declared(10 * 1024**3, clip_bytes[:1024], then_wait=20.0),
        "/slow.mp4": dripping(clip_bytes, every=0.05),
        "/notes.txt": body(b"these are notes, not a video\n" * 50, "text/plain"),
        "/gone.mp4": status(404),
        "/broken.mp4": status(500),
    }
    with hosting(Source(routes)) as served:
        for hop in range(1, 6):  # /hops/N redirects N times before the video
            served.routes[f"/hops/{hop}"] = redirect(
                served.url(f"/hops/{hop - 1}" if hop > 1 else "/clips/walk.mp4")
            )
        port = served.base.rsplit(":", 1)[1]
        served.routes["/to-loopback"] = redirect(f"http://127.0.0.2:{port}/clips/walk.mp4", 307)
        served.routes["/to-metadata"] = redirect("http://169.254.169.254/latest/meta-data/", 301)
        served.routes["/to-ftp"] = redirect("ftp://127.0.0.1/walk.mp4")
        yield served


async def post_url(service: Service, url: str, how: str = "form", **fields: Any) -> httpx.Response:
    """POST a source_url job as a multipart form, a URL-encoded form or a JSON body."""
    values = {"source_url": url, **fields}
    if how == "json":
        return await service.client.post("/v1/jobs", json=values)
    if how == "urlencoded":
        return await service.client.post("/v1/jobs", data={k: str(v) for k, v in values.items()})
    parts = {k: (None, str(v)) for k, v in values.items()}
    return await service.client.post("/v1/jobs", files=parts)


async def assert_nothing_stored(service: Service) -> None:
    assert service.stored_files() == [], "no blob (nor its temp file) is left behind"
    assert (await service.client.get("/v1/jobs")).json()["items"] == [], "no row either"


def test_a_video_by_url_runs_to_success_with_the_demo_model(
    tmp_path: Path, source: Source, clip_bytes: bytes
) -> None:
    """End to end over real HTTP: uvicorn with its embedded worker, the shipped demo model."""
    settings = make_settings(
        tmp_path, REPO / "models", default_model="demo_motion", poll_interval=0.1, **ALLOWED
    )
    app = create_app(settings, embedded_worker=True, analyzer_factory=lambda: shared_analyzer(settings))
    url = source.url("/clips/walk.mp4?token=abc")
    with serving(app) as base, httpx.Client(base_url=base, timeout=30) as client:
        response = client.post(
            "/v1/jobs",
            files={"source_url": (None, url), "segment_seconds": (None, "1"), "top_k": (None, "2")},
        )
        assert response.status_code == 202, response.text
        job = response.json()
        assert job["source_url"] == url
        assert job["video"]["filename"] == "walk.mp4" and job["video"]["size_bytes"] == len(clip_bytes)
        assert (job["video"]["width"], job["video"]["height"]) == (96, 72)
        assert (settings.videos_dir / job["id"]).read_bytes() == clip_bytes
        headers = source.requests[0][1]
        assert headers["host"] == source.base.removeprefix("http://")
        assert headers["accept-encoding"] == "identity"

        deadline = time.monotonic() + 120
        while (done := client.get(f"/v1/jobs/{job['id']}").json())["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, done
            time.sleep(0.2)
        assert done["status"] == "succeeded", done
        assert done["source_url"] == url
        results = client.get(f"/v1/jobs/{job['id']}/results").json()
        cli = subprocess.run(
            [
                sys.executable,
                "-m",
                "app",
                "submit",
                "--source-url",
                url,
                "--top-k",
                "1",
                "--wait",
                "--format",
                "csv",
            ],
            cwd=REPO,
            env={**os.environ, "VAS_URL": base},
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert cli.returncode == 0, cli.stderr
    rows = list(csv.DictReader(io.StringIO(cli.stdout)))
    assert len(rows) == 2 and {row["rank"] for row in rows} == {"1"}, cli.stdout
    assert "succeeded" in cli.stderr
    neither = subprocess.run(
        [sys.executable, "-m", "app", "submit"], cwd=REPO, capture_output=True, text=True
    )
    assert neither.returncode == 2 and "--source-url" in neither.stderr
    assert results["model"] == "demo_motion" and len(results["segments"]) == 2
    assert all(len(segment["labels"]) == 2 for segment in results["segments"])
    assert results["video"]["source_url"] == url and results["video"]["filename"] == "walk.mp4"


@pytest.mark.settings(**ALLOWED)
@pytest.mark.parametrize("how", ["form", "urlencoded", "json"])
async def test_every_body_kind_names_a_source_url(service: Service, source: Source, how: str) -> None:
    response = await post_url(service, source.url("/chunked/walk.mp4"), how, top_k=3, min_score=0.0)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["options"]["top_k"] == 3 and job["source_url"].endswith("/chunked/walk.mp4")
    assert service.stored_files() == [job["id"]]


async def test_loopback_is_refused_unless_allowed_and_not_even_asked(
    service: Service, source: Source
) -> None:
    response = await post_url(service, source.url("/clips/walk.mp4"))
    detail = assert_problem(response, 422, "invalid_source_url")["detail"]
    assert "127.0.0.1" in detail and "VAS_SOURCE_URL_ALLOWED_NETWORKS" in detail
    assert source.requests == [], "the refused address got no request"
    await assert_nothing_stored(service)


@pytest.mark.parametrize(
    "url",
    ["ftp://example.org/walk.mp4", "file:///etc/passwd", "http://user:pw@example.org/a.mp4", "not a url"],
)
async def test_only_plain_http_urls(service: Service, url: str) -> None:
    assert_problem(await post_url(service, url), 422, "invalid_source_url")
    await assert_nothing_stored(service)


@pytest.mark.settings(**ALLOWED)
@pytest.mark.parametrize(
    ("path", "refused"),
    [("/to-loopback", "127.0.0.2"), ("/to-metadata", "169.254.169.254"), ("/to-ftp", "http")],
)
async def test_each_redirect_is_checked_again(
    service: Service, source: Source, path: str, refused: str
) -> None:
    response = await post_url(service, source.url(path))
    detail = assert_problem(response, 422, "invalid_source_url")["detail"]
    assert "redirect" in detail and refused in detail
    assert source.paths() == [path], "the refused target was never asked"
    await assert_nothing_stored(service)


@pytest.mark.settings(**ALLOWED)
async def test_three_redirects_are_followed_and_a_fourth_is_refused(service: Service, source: Source) -> None:
    followed = await post_url(service, source.url("/hops/3"))
    assert followed.status_code == 202, followed.text
    assert followed.json()["video"]["filename"] == "walk.mp4"
    assert source.paths() == ["/hops/3", "/hops/2", "/hops/1", "/clips/walk.mp4"]

    source.requests.clear()
    refused = await post_url(service, source.url("/hops/4"))
    assert "more than 3" in assert_problem(refused, 422, "source_unreachable")["detail"]
    assert source.paths() == ["/hops/4", "/hops/3", "/hops/2", "/hops/1"]
    assert len(service.stored_files()) == 1, "only the first job's video"


@pytest.mark.settings(**ALLOWED, max_upload_bytes=100_000)
@pytest.mark.parametrize("path", ["/huge.mp4", "/endless.mp4"])
async def test_too_large_is_refused_early(service: Service, source: Source, path: str) -> None:
    """A declared length over the limit is refused on the headers (the host then waits 20 s
    with the rest); a chunked body without one is cut off once it passes the limit."""
    started = time.monotonic()
    response = await post_url(service, source.url(path))
    assert_problem(response, 413, "source_too_large")
    assert time.monotonic() - started < 10
    await assert_nothing_stored(service)


@pytest.mark.settings(**ALLOWED, source_fetch_timeout_seconds=1.5)
async def test_a_slow_host_is_stopped_at_the_total_time_limit(service: Service, source: Source) -> None:
    """Every byte arrives well within any per-read timeout; the whole fetch has 1.5 s."""
    started = time.monotonic()
    response = await post_url(service, source.url("/slow.mp4"))
    took = time.monotonic() - started
    assert "source_fetch_timeout_seconds" in assert_problem(response, 422, "source_timeout")["detail"]
    assert 1.4 < took < 6, took
    await assert_nothing_stored(service)


@pytest.mark.settings(**ALLOWED)
@pytest.mark.parametrize(
    ("path", "status_code", "code", "says"),
    [
        ("/notes.txt", 415, "unsupported_media", ""),
        ("/gone.mp4", 422, "source_unreachable", "HTTP 404"),
        ("/broken.mp4", 422, "source_unreachable", "HTTP 500"),
    ],
)
async def test_what_is_not_a_video_at_the_url_is_a_clear_problem(
    service: Service, source: Source, path: str, status_code: int, code: str, says: str
) -> None:
    detail = assert_problem(await post_url(service, source.url(path)), status_code, code)["detail"]
    assert says in detail
    await assert_nothing_stored(service)


@pytest.mark.settings(**ALLOWED)
async def test_a_closed_port_and_an_unknown_host_are_unreachable(service: Service) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    closed = await post_url(service, f"http://127.0.0.1:{port}/walk.mp4")
    assert_problem(closed, 422, "source_unreachable")
    unknown = await post_url(service, "http://no-such-host.invalid/walk.mp4")
    assert "does not resolve" in assert_problem(unknown, 422, "source_unreachable")["detail"]
    await assert_nothing_stored(service)


@pytest.mark.settings(**ALLOWED)
async def test_a_file_and_a_source_url_together_are_refused(
    service: Service, source: Source, clip_bytes: bytes
) -> None:
    url = source.url("/clips/walk.mp4")
    orders: list[dict[str, Any]] = [
        {"source_url": (None, url), "file": ("walk.mp4", clip_bytes)},  # the URL first
        {"file": ("walk.mp4", clip_bytes), "source_url": (None, url)},  # the file first
    ]
    for parts in orders:
        response = await service.client.post("/v1/jobs", files=parts)
        assert "not both" in assert_problem(response, 422, "invalid_options")["detail"]
    as_json = await service.client.post("/v1/jobs", json={"source_url": url, "file": "walk.mp4"})
    assert "not both" in assert_problem(as_json, 422, "invalid_options")["detail"]
    assert source.requests == [], "nothing was fetched"
    await assert_nothing_stored(service)


async def test_a_field_body_without_source_url_or_with_bad_options(service: Service) -> None:
    missing = await service.client.post("/v1/jobs", json={"top_k": 2})
    assert "source_url" in assert_problem(missing, 422, "invalid_options")["detail"]
    assert_problem(await service.client.post("/v1/jobs", json=[1, 2]), 400, "bad_upload")
    unknown = await service.client.post("/v1/jobs", json={"source_url": "http://example.org/a.mp4", "x": 1})
    assert "unknown field" in assert_problem(unknown, 422, "invalid_options")["detail"]


@pytest.mark.settings(**ALLOWED)
async def test_options_are_checked_before_the_fetch(service: Service, source: Source) -> None:
    response = await post_url(service, source.url("/clips/walk.mp4"), "json", top_k=500)
    assert_problem(response, 422, "invalid_options")
    assert source.requests == [], "a job refused for its options fetched nothing"


@pytest.mark.settings(**ALLOWED)
async def test_an_idempotency_key_replays_a_url_job_without_fetching_again(
    service: Service, source: Source
) -> None:
    url = source.url("/clips/walk.mp4")
    key = {"Idempotency-Key": "by-url-1"}
    first = await service.client.post("/v1/jobs", json={"source_url": url, "top_k": 2}, headers=key)
    again = await service.client.post("/v1/jobs", json={"source_url": url, "top_k": 2}, headers=key)
    assert (first.status_code, again.status_code) == (202, 200), again.text
    assert again.json()["id"] == first.json()["id"]
    assert len(source.requests) == 1, "a replay is compared, not fetched"
    for changed in ({"source_url": url + "?v=2", "top_k": 2}, {"source_url": url, "top_k": 3}):
        reused = await service.client.post("/v1/jobs", json=changed, headers=key)
        assert_problem(reused, 422, "idempotency_key_reused")
    assert len(source.requests) == 1 and service.stored_files() == [first.json()["id"]]


def test_the_checked_address_is_the_one_connected_to(source: Source, clip_bytes: bytes) -> None:
    """DNS rebinding: the name is resolved once, checked, and the connection goes to that
    address with the name only in Host; a name with any refused address is refused."""
    port = int(source.base.rsplit(":", 1)[1])
    answers: list[str] = []

    def resolver(host: str, at: int) -> list[str]:
        answers.append(host)
        return ["127.0.0.1"]

    sink = Discard()
    fetched = fetch(
        f"http://videos.example:{port}/clips/walk.mp4",
        sink,
        max_bytes=10**7,
        allowed=parse_networks(LOOPBACK),
        timeout=10,
        resolver=resolver,
    )
    assert sink.size == len(clip_bytes) and fetched.filename == "walk.mp4"
    assert answers == ["videos.example"], "resolved once"
    assert source.requests[0][1]["host"] == f"videos.example:{port}"

    with pytest.raises(InvalidSourceUrl, match=r"10\.0\.0\.7"):
        fetch(
            f"http://videos.example:{port}/clips/walk.mp4",
            Discard(),
            max_bytes=10**7,
            allowed=parse_networks(LOOPBACK),
            timeout=10,
            resolver=lambda host, at: ["127.0.0.1", "10.0.0.7"],
        )
    assert len(source.requests) == 1, "the refused name got no request"


def test_https_keeps_the_name_for_sni_and_the_certificate(tmp_path: Path, clip_bytes: bytes) -> None:
    """The connection goes to the checked address, but TLS still verifies the URL's name."""
    if shutil.which("openssl") is None:
        skip_or_fail("needs the openssl command")
    name = "videos.invalid"
    server_tls, client_tls, sni = self_signed(tmp_path, name)
    with hosting(Source({"/walk.mp4": body(clip_bytes)}), tls=server_tls) as served:
        url = f"https://{name}:{served.base.rsplit(':', 1)[1]}/walk.mp4"
        options: dict[str, Any] = {"max_bytes": 10**7, "allowed": parse_networks(LOOPBACK), "timeout": 10}
        sink = Discard()
        fetch(url, sink, resolver=lambda host, at: ["127.0.0.1"], ssl_context=client_tls, **options)
        assert sink.size == len(clip_bytes) and sni == [name]
        with pytest.raises(SourceUnreachable):  # a context that does not trust the certificate
            fetch(url, Discard(), resolver=lambda host, at: ["127.0.0.1"], **options)
    assert len(served.requests) == 1, "the untrusted connection sent no request"
