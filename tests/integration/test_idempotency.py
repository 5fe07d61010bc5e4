"""Idempotency-Key: the same request replays its job (200 + Location); the key sent with a
different request (file bytes, model or options) is ``422 idempotency_key_reused``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.api.app import create_app
from tests.integration.conftest import Service, assert_problem, close_app, make_settings
from tests.media import write_video

pytestmark = pytest.mark.anyio

KEY = {"Idempotency-Key": "upload-7"}


@pytest.fixture
def other_clip(tmp_path: Path) -> Path:
    return write_video(tmp_path / "other.mp4", seconds=2.0, width=96, height=72)


async def post(service: Service, path: Path, name: str = "clip.mp4", **fields: Any) -> httpx.Response:
    data = {k: str(v) for k, v in fields.items()}
    with path.open("rb") as fh:
        return await service.client.post("/v1/jobs", files={"file": (name, fh)}, data=data, headers=KEY)


async def test_the_same_request_replays_its_job(service: Service, short_clip: Path) -> None:
    first = await post(service, short_clip, top_k=2)
    again = await post(service, short_clip, "renamed.mp4", top_k=2)  # the name is display only
    assert (first.status_code, again.status_code) == (202, 200), again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == f"/v1/jobs/{first.json()['id']}"
    assert service.stored_files() == [first.json()["id"]]


@pytest.mark.parametrize(
    ("changed", "fields"),
    [("file", {"top_k": 2}), ("model", {"top_k": 2, "model": "x3d_s"}), ("options", {"top_k": 3})],
)
async def test_the_key_with_a_different_request_is_refused(
    service: Service, short_clip: Path, other_clip: Path, changed: str, fields: dict[str, Any]
) -> None:
    first = await post(service, short_clip, top_k=2)
    assert first.status_code == 202, first.text
    reused = await post(service, other_clip if changed == "file" else short_clip, **fields)
    body = assert_problem(reused, 422, "idempotency_key_reused")
    assert "different request" in body["detail"]
    assert "location" not in reused.headers
    assert service.stored_files() == [first.json()["id"]], "the refused upload is not kept"
    assert len((await service.client.get("/v1/jobs")).json()["items"]) == 1


@pytest.mark.parametrize("same_request", [True, False], ids=["same", "different"])
async def test_concurrent_requests_with_one_key(
    service: Service, short_clip: Path, other_clip: Path, same_request: bool
) -> None:
    """Both may pass the look-up before either inserts; the unique key decides, and the
    loser is a replay or a refusal by the same rule."""
    second_file = short_clip if same_request else other_clip
    first, second = await asyncio.gather(post(service, short_clip), post(service, second_file))
    codes = sorted([first.status_code, second.status_code])
    if same_request:
        assert codes == [200, 202] and first.json()["id"] == second.json()["id"]
    else:
        assert codes == [202, 422]
        refused = first if first.status_code == 422 else second
        assert_problem(refused, 422, "idempotency_key_reused")
    assert len(service.stored_files()) == 1


async def test_with_the_database_away_a_keyed_upload_fails_before_its_body_is_read(
    tmp_path: Path, zoo_models_dir: Path
) -> None:
    """Comparing a replay needs its body, but the key's look-up still comes first: while the
    database is away, nobody's gigabytes are read only to be refused."""
    settings = make_settings(tmp_path, zoo_models_dir)
    down = settings.model_copy(update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/none"})
    app = create_app(down)
    sent: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        boundary = b"--b\r\nContent-Disposition: form-data; name=file; filename=a.mp4\r\n\r\n"
        for chunk in (boundary, *([b"\0" * 65536] * 16), b"\r\n--b--\r\n"):
            sent.append(len(chunk))
            yield chunk

    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.post(
                "/v1/jobs",
                content=body(),
                headers={**KEY, "Content-Type": "multipart/form-data; boundary=b"},
            )
        assert_problem(response, 503, "unavailable")
        assert len(sent) <= 1, f"{len(sent)} chunks of the body were read"
    finally:
        close_app(app)
