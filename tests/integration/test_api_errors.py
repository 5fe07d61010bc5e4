"""Bad input gets its specific status and one problem+json shape, and leaves nothing behind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import Service, assert_problem, close_app, submit

pytestmark = pytest.mark.anyio


async def assert_nothing_stored(service: Service) -> None:
    assert (await service.client.get("/v1/jobs")).json()["items"] == []
    assert service.stored_files() == []


async def post_bytes(service: Service, name: str, payload: bytes, **data: str) -> httpx.Response:
    return await service.client.post("/v1/jobs", files={"file": (name, payload, "video/mp4")}, data=data)


@pytest.mark.parametrize(
    ("name", "payload", "status", "code"),
    [
        ("empty.mp4", b"", 415, "unsupported_media"),
        ("notes.mp4", b"just some text, not a video\n" * 50, 415, "unsupported_media"),
        ("elf.mp4", b"\x7fELF\x02\x01\x01" + bytes(2000), 415, "unsupported_media"),
        ("list.mp4", b"#EXTM3U\n#EXTINF:2,\nother.mp4\n", 415, "unsupported_media"),
    ],
)
async def test_non_videos_are_refused(
    service: Service, name: str, payload: bytes, status: int, code: str
) -> None:
    assert_problem(await post_bytes(service, name, payload), status, code)
    await assert_nothing_stored(service)


async def test_ffconcat_playlist_cannot_read_a_sibling_upload(service: Service, short_clip: Path) -> None:
    sibling = (await submit(service, short_clip)).json()["id"]
    playlist = f"ffconcat version 1.0\nfile '{sibling}'\nfile '../videos/{sibling}'\n".encode()
    assert_problem(await post_bytes(service, "concat.mp4", playlist), 415, "unsupported_media")
    # Even with the text check bypassed, FFmpeg's demuxer allow-list refuses concat:
    from app.analysis.probe import open_container
    from app.errors import UnsupportedMedia

    sneaky = service.settings.data_dir / "sneaky.ffconcat"
    sneaky.write_bytes(b"\n" * 70 + playlist)
    with pytest.raises(UnsupportedMedia):
        open_container(sneaky, service.settings.allowed_format_list).close()
    assert [j["id"] for j in (await service.client.get("/v1/jobs")).json()["items"]] == [sibling]


async def test_truncated_mp4_is_refused(service: Service, short_clip: Path) -> None:
    data = short_clip.read_bytes()
    assert_problem(await post_bytes(service, "cut.mp4", data[: len(data) // 2]), 415, "unsupported_media")
    await assert_nothing_stored(service)


@pytest.mark.settings(max_upload_bytes=50_000)
async def test_over_limit_with_content_length(service: Service) -> None:
    response = await post_bytes(service, "big.mp4", bytes(2_000_000))
    assert_problem(response, 413, "upload_too_large")
    await assert_nothing_stored(service)
    assert list((service.settings.videos_dir / ".tmp").iterdir()) == []


@pytest.mark.settings(max_upload_bytes=50_000)
async def test_over_limit_chunked_without_content_length(service: Service) -> None:
    boundary = "vasboundary"

    async def body() -> AsyncIterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n'
            "Content-Type: video/mp4\r\n\r\n"
        ).encode()
        for _ in range(40):
            yield bytes(16_384)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = await service.client.post(
        "/v1/jobs", content=body(), headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "upload_too_large")
    await assert_nothing_stored(service)
    assert list((service.settings.videos_dir / ".tmp").iterdir()) == []


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"model": "no_such_model"}, "unknown_model"),
        ({"segment_seconds": "0"}, "invalid_options"),
        ({"segment_seconds": "-1"}, "invalid_options"),
        ({"segment_seconds": "abc"}, "invalid_options"),
        ({"segment_seconds": "nan"}, "invalid_options"),
        ({"top_k": "0"}, "invalid_options"),
        ({"top_k": "51"}, "invalid_options"),
        ({"crops": "2"}, "invalid_options"),
        ({"start": "5", "end": "2"}, "invalid_options"),
        ({"colour": "red"}, "invalid_options"),
    ],
)
async def test_bad_options_are_422(
    service: Service, short_clip: Path, fields: dict[str, str], code: str
) -> None:
    assert_problem(await post_bytes(service, "ok.mp4", short_clip.read_bytes(), **fields), 422, code)
    await assert_nothing_stored(service)


async def test_missing_and_duplicate_file_parts(service: Service, short_clip: Path) -> None:
    missing = await service.client.post("/v1/jobs", files={"model": (None, "x3d_xs")})
    assert_problem(missing, 422, "invalid_options")
    data = short_clip.read_bytes()
    twice = await service.client.post(
        "/v1/jobs", files=[("file", ("a.mp4", data)), ("file", ("b.mp4", data))]
    )
    assert_problem(twice, 422, "invalid_options")
    not_multipart = await service.client.post("/v1/jobs", content=data, headers={"content-type": "video/mp4"})
    assert_problem(not_multipart, 400, "bad_upload")
    await assert_nothing_stored(service)


@pytest.mark.parametrize(
    "hostile", ["../../etc/passwd", "a\x00b.mp4", "x" * 10_000 + ".mp4", "..", "C:\\win\\v.mp4"]
)
async def test_hostile_filenames_are_only_metadata(service: Service, short_clip: Path, hostile: str) -> None:
    with short_clip.open("rb") as fh:
        response = await service.client.post("/v1/jobs", files={"file": (hostile, fh, "video/mp4")})
    assert response.status_code == 202, response.text
    job = response.json()
    assert service.stored_files() == [job["id"]]
    name = job["video"]["filename"]
    assert "/" not in name and "\\" not in name and "\x00" not in name and len(name) <= 255 and name


async def test_unknown_job_and_unknown_route(service: Service) -> None:
    assert_problem(
        await service.client.get("/v1/jobs/00000000-0000-0000-0000-000000000000"), 404, "not_found"
    )
    assert_problem(await service.client.get("/v1/jobs/nope/results"), 404, "not_found")
    assert_problem(await service.client.delete("/v1/jobs/nope"), 404, "not_found")
    assert_problem(await service.client.get("/no/such/route"), 404, "not_found")
    assert_problem(await service.client.put("/v1/jobs"), 405, "method_not_allowed")
    assert_problem(await service.client.get("/v1/jobs", params={"limit": "0"}), 422, "invalid_request")
    assert_problem(await service.client.get("/v1/jobs", params={"status": "bogus"}), 422, "invalid_request")


async def test_health_and_readiness(service: Service) -> None:
    assert (await service.client.get("/healthz")).json() == {"status": "ok"}
    for probe in ("/healthz", "/readyz"):  # load balancers often probe with HEAD
        head = await service.client.head(probe)
        assert head.status_code == 200 and head.content == b""
    ready = await service.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {
        "database": "ok",
        "storage": "ok",
        "migrations": "ok",
    }
    service.app.state.draining = True
    assert_problem(await service.client.get("/readyz"), 503, "not_ready")
    assert (await service.client.head("/readyz")).status_code == 503


async def test_readiness_fails_when_migrations_are_not_current(tmp_path: Path, zoo_models_dir: Path) -> None:
    from app.api.app import create_app
    from app.settings import Settings

    settings = Settings(data_dir=tmp_path, models_dir=zoo_models_dir, embedded_worker=False)
    app = create_app(settings)  # database file exists but was never migrated
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            body = assert_problem(await client.get("/readyz"), 503, "not_ready")
            assert body["checks"]["migrations"] != "ok"
    finally:
        close_app(app)


async def test_upload_keeps_its_blob_when_the_database_drops_mid_insert(
    service: Service, short_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connection lost during the INSERT: the row may have been committed, so the blob stays
    (the orphan sweep removes it if no row refers to it); the client gets 503 + Retry-After."""
    from app.errors import Unavailable

    def dropped(*args: object, **kwargs: object) -> None:
        raise Unavailable("database connection lost")

    monkeypatch.setattr(service.store, "create_job", dropped)
    response = await submit(service, short_clip)
    assert_problem(response, 503, "unavailable")
    assert response.headers["retry-after"]
    assert len(service.stored_files()) == 1


async def test_openapi_documents_every_error_as_problem_json(service: Service) -> None:
    """Clients generated from the document must find the body they get: each 4xx/5xx is a
    Problem as application/problem+json, with the headers the service always sends."""
    document = (await service.client.get("/openapi.json")).json()
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    assert {"limit", "retry_after", "job_status", "errors"} <= document["components"]["schemas"]["Problem"][
        "properties"
    ].keys()
    operation_ids: list[str] = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            operation_ids.append(operation["operationId"])
            for status, response in operation["responses"].items():
                where = f"{method.upper()} {path} {status}"
                if status[0] not in "45":
                    continue
                assert response["content"] == {"application/problem+json": {"schema": problem_ref}}, where
                required = {"401": "WWW-Authenticate", "429": "Retry-After", "503": "Retry-After"}.get(status)
                if required:
                    assert response["headers"][required]["required"] is True, where
    assert len(operation_ids) == len(set(operation_ids)), sorted(operation_ids)
    assert "429" in document["paths"]["/v1/jobs"]["post"]["responses"]
