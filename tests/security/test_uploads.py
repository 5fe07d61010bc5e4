"""Hostile uploads not already covered in tests/integration/test_api_errors.py: a client that
disconnects mid-body, playlists that name a sibling upload (proved unread with inotify),
videos whose file extension lies about their container, and a probe child that crashes
or hangs."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest

from app.analysis import probe
from app.analysis.probe_sandbox import ProbeLimits, ProbeSandbox
from app.errors import UnsupportedMedia
from tests.integration.conftest import Service, assert_problem, submit
from tests.media import write_video
from tests.security.opens import OpenWatch

pytestmark = pytest.mark.anyio


def _scope(boundary: str, content_length: int | None) -> dict[str, Any]:
    headers = [
        (b"host", b"testserver"),
        (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
    ]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/jobs",
        "raw_path": b"/v1/jobs",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


@pytest.mark.parametrize("content_length", [5_000_000, None], ids=["with-length", "chunked"])
async def test_client_disconnect_mid_upload_leaves_no_row_and_no_file(
    service: Service, short_clip: Path, content_length: int | None
) -> None:
    boundary = "vasdisconnect"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    data = short_clip.read_bytes()
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": head, "more_body": True},
        {"type": "http.request", "body": data[: len(data) // 2], "more_body": True},
        {"type": "http.disconnect"},
    ]
    tmp = service.settings.videos_dir / ".tmp"
    saw_partial: list[bool] = []

    async def receive() -> dict[str, Any]:
        if len(messages) == 1:  # about to disconnect: the partial file exists right now
            saw_partial.append(any(tmp.iterdir()))
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await service.app(_scope(boundary, content_length), receive, send)
    assert saw_partial == [True], "the upload was streaming to a temp file when the client left"
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert all(m["status"] < 500 for m in starts), starts
    assert service.store.list_jobs().items == []
    assert service.stored_files() == []
    assert list(tmp.iterdir()) == []


# -------------------------------------------------------------- playlists naming a sibling


def _hls(*uris: str) -> bytes:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:4", "#EXT-X-MEDIA-SEQUENCE:0"]
    for uri in uris:
        lines += ["#EXTINF:4.0,", uri]
    return ("\n".join([*lines, "#EXT-X-ENDLIST"]) + "\n").encode()


def _ffconcat(*paths: str) -> bytes:
    return ("ffconcat version 1.0\n" + "".join(f"file '{p}'\n" for p in paths)).encode()


@pytest.mark.parametrize(
    ("name", "content_type", "make"),
    [
        ("list.m3u8", "application/vnd.apple.mpegurl", _hls),
        ("list.mp4", "video/mp4", _hls),
        ("concat.mp4", "video/mp4", _ffconcat),
        ("concat.ffconcat", "application/octet-stream", _ffconcat),
    ],
)
async def test_playlist_naming_a_sibling_upload_never_reads_it(
    service: Service, short_clip: Path, name: str, content_type: str, make: Any
) -> None:
    sibling = (await submit(service, short_clip)).json()["id"]
    sibling_path = service.settings.videos_dir / sibling
    playlist = make(sibling, f"../videos/{sibling}", str(sibling_path), f"file:{sibling_path}")
    with OpenWatch(sibling_path) as watch:
        response = await service.client.post("/v1/jobs", files={"file": (name, playlist, content_type)})
        assert_problem(response, 415, "unsupported_media")
        assert watch.events() == 0
    assert [j["id"] for j in (await service.client.get("/v1/jobs")).json()["items"]] == [sibling]
    assert service.stored_files() == [sibling]


@pytest.fixture
def sibling_dir(tmp_path: Path, short_clip: Path) -> Iterator[Path]:
    """A playlist next to real media it names (with the extensions FFmpeg's HLS demuxer wants)."""
    folder = tmp_path / "siblings"
    folder.mkdir()
    shutil.copy(short_clip, folder / "sib.mp4")
    with av.open(str(short_clip)) as src, av.open(str(folder / "seg.ts"), "w", format="mpegts") as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    yield folder


@pytest.mark.parametrize(
    ("playlist", "text", "target"),
    [
        ("p.m3u8", _hls("seg.ts").decode(), "seg.ts"),
        ("c.ffconcat", _ffconcat("sib.mp4").decode(), "sib.mp4"),
    ],
    ids=["hls", "ffconcat"],
)
def test_demuxer_allow_list_alone_stops_playlists(
    sibling_dir: Path, monkeypatch: pytest.MonkeyPatch, playlist: str, text: str, target: str
) -> None:
    """Second layer: with the text sniffing switched off, FFmpeg's format allow-list still
    refuses the HLS and concat demuxers. The control shows that, unrestricted, FFmpeg
    does open the sibling (so the watch would have seen it)."""
    path = sibling_dir / playlist
    path.write_text(text)
    with OpenWatch(sibling_dir / target) as watch:
        with av.open(str(path)) as unrestricted:
            assert unrestricted.format.name in ("hls", "concat")
        assert watch.events() > 0, "control: an unrestricted open reads the sibling"
    monkeypatch.setattr(probe, "_looks_like_playlist", lambda head: False)
    monkeypatch.setattr(probe, "_looks_like_text", lambda head: False)
    allowed = [f for f in probe_defaults() if f]
    with OpenWatch(sibling_dir / target) as watch:
        with pytest.raises(UnsupportedMedia):
            probe.open_container(path, allowed).close()
        assert watch.events() == 0


def probe_defaults() -> list[str]:
    from app.settings import Settings

    return Settings().allowed_format_list


# -------------------------------------------------------------- extensions that lie


@pytest.mark.parametrize(
    ("codec", "written_as", "name", "container"),
    [
        ("libx264", "mkv", "clip.mp4", "matroska,webm"),
        ("libx264", "mp4", "clip.avi", "mov,mp4,m4a,3gp,3g2,mj2"),
        ("mpeg4", "avi", "clip.mkv", "avi"),
        ("libx264", "ts", "clip.mov", "mpegts"),
        ("libx264", "mp4", "clip", "mov,mp4,m4a,3gp,3g2,mj2"),
    ],
)
async def test_wrong_extension_is_ignored(
    service: Service, tmp_path: Path, codec: str, written_as: str, name: str, container: str
) -> None:
    source = write_video(tmp_path / f"src.{written_as}", seconds=1.0, codec=codec)
    with source.open("rb") as fh:
        response = await service.client.post("/v1/jobs", files={"file": (name, fh, "video/quicktime")})
    assert response.status_code == 202, response.text
    job = response.json()
    stored = service.store.get_job(job["id"])
    assert stored is not None and stored.video is not None and stored.video.container == container
    assert service.new_worker().run_once() is True
    done = (await service.client.get(f"/v1/jobs/{job['id']}")).json()
    assert done["status"] == "succeeded", done


# -------------------------------------------------------------- a probe that crashes or hangs


@pytest.mark.parametrize(
    ("fault", "limits", "code"),
    [("segfault", {}, "probe_failed"), ("hang", {"timeout_seconds": 1.0}, "probe_timeout")],
)
async def test_a_probe_fault_refuses_that_upload_only(
    service: Service, short_clip: Path, fault: str, limits: dict[str, float], code: str
) -> None:
    """FFmpeg crashing or spinning on an upload costs a 422 for it, never the API process:
    no row, no file, and the next upload is served."""
    healthy = service.app.state.prober
    service.app.state.prober = ProbeSandbox(ProbeLimits(fault=fault, **limits))  # type: ignore[arg-type]
    try:
        body = assert_problem(await submit(service, short_clip), 422, code)
    finally:
        service.app.state.prober.close()
        service.app.state.prober = healthy
    assert "could not be examined" in body["detail"] or "longer than" in body["detail"]
    assert service.store.list_jobs().items == []
    assert service.stored_files() == []
    assert (await submit(service, short_clip)).status_code == 202
