"""``models fetch`` and ``VAS_AUTO_FETCH`` against a real HTTP server on 127.0.0.1 serving a
zoo-format checkpoint written from a random init: sha256 checks, atomic writes, offline."""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from app.analysis.catalog import load_catalog
from app.analysis.loader import ModelLoader
from app.analysis.lockfile import LOCK_NAME, read_lock
from app.cli import models_cmd
from app.errors import WeightsInvalid, WeightsMissing
from app.settings import Settings
from tests.conftest import skip_or_fail

WEIGHTS = "X3D_XS.pyth"


class Remote:
    """Serves one file: ``/ok/<name>`` whole, ``/cut/<name>`` announcing its full length but
    sending half, anything else 404. Counts the requests."""

    def __init__(self, body: bytes) -> None:
        self.body, self.requests = body, 0
        remote = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                remote.requests += 1
                if self.path not in (f"/ok/{WEIGHTS}", f"/cut/{WEIGHTS}"):
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(remote.body)))
                self.end_headers()
                cut = self.path.startswith("/cut/")
                self.wfile.write(remote.body[: len(remote.body) // 2] if cut else remote.body)
                self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def remote(zoo_models_dir: Path) -> Iterator[Remote]:
    served = Remote((zoo_models_dir / WEIGHTS).read_bytes())
    yield served
    served.server.shutdown()
    served.server.server_close()


@pytest.fixture
def models(tmp_path: Path, remote: Remote, monkeypatch: pytest.MonkeyPatch) -> Path:
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("VAS_MODELS_DIR", str(models))
    remote.requests = 0
    return models


def point_at(models: Path, url: str) -> None:
    """A manifest override: the zoo's x3d_xs entry, downloaded from ``url``."""
    (models / "manifest.json").write_text(json.dumps({"models": [{"name": "x3d_xs", "url": url}]}))


def fetch(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="vas")
    models_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["models", "fetch", *argv])
    code: int = args.handler(args)
    return code


def leftovers(models: Path) -> list[str]:
    return sorted(p.name for p in models.iterdir() if p.name.endswith(".part"))


def test_fetch_downloads_pins_the_hash_and_the_file_loads(
    models: Path, remote: Remote, capsys: pytest.CaptureFixture[str]
) -> None:
    point_at(models, f"{remote.base}/ok/{WEIGHTS}")
    assert fetch("x3d_xs") == 0
    out, err = capsys.readouterr()
    digest = hashlib.sha256(remote.body).hexdigest()
    assert (models / WEIGHTS).read_bytes() == remote.body and leftovers(models) == []
    assert read_lock(models) == {WEIGHTS: digest}
    assert f"{len(remote.body)} bytes, sha256 {digest}" in out
    assert "100%" in err and "publishes no checksums" in err and "weights.lock.json" in err
    loaded = ModelLoader(models).load(load_catalog(models).get("x3d_xs"))
    assert loaded.sha256 == digest and not loaded.module.training


def test_a_present_file_is_not_downloaded_again(
    models: Path, remote: Remote, capsys: pytest.CaptureFixture[str]
) -> None:
    point_at(models, f"{remote.base}/ok/{WEIGHTS}")
    (models / WEIGHTS).write_bytes(b"mine")
    assert fetch("x3d_xs") == 0
    assert remote.requests == 0 and (models / WEIGHTS).read_bytes() == b"mine"
    assert "already in" in capsys.readouterr().out


def test_a_wrong_sha256_writes_nothing(
    models: Path, remote: Remote, capsys: pytest.CaptureFixture[str]
) -> None:
    point_at(models, f"{remote.base}/ok/{WEIGHTS}")
    assert fetch("x3d_xs", "--sha256", "ab" * 32) == 1
    err = capsys.readouterr().err
    assert "error [weights_invalid]" in err and "ab" * 32 in err and "nothing was written" in err
    assert remote.requests == 1
    assert not (models / WEIGHTS).exists() and leftovers(models) == [] and read_lock(models) == {}


def test_the_given_sha256_is_accepted_and_recorded(models: Path, remote: Remote) -> None:
    point_at(models, f"{remote.base}/ok/{WEIGHTS}")
    digest = hashlib.sha256(remote.body).hexdigest()
    assert fetch("x3d_xs", "--sha256", digest.upper()) == 0
    assert read_lock(models) == {WEIGHTS: digest}


def test_a_refetch_must_match_the_pinned_hash(
    models: Path, remote: Remote, capsys: pytest.CaptureFixture[str]
) -> None:
    point_at(models, f"{remote.base}/ok/{WEIGHTS}")
    (models / WEIGHTS).write_bytes(b"the pinned file")
    (models / LOCK_NAME).write_text(json.dumps({WEIGHTS: "cd" * 32}))
    assert fetch("x3d_xs", "--force") == 1
    assert "weights.lock.json" in capsys.readouterr().err
    assert (models / WEIGHTS).read_bytes() == b"the pinned file" and leftovers(models) == []
    assert read_lock(models) == {WEIGHTS: "cd" * 32}


def test_a_truncated_download_writes_nothing(
    models: Path, remote: Remote, capsys: pytest.CaptureFixture[str]
) -> None:
    point_at(models, f"{remote.base}/cut/{WEIGHTS}")
    assert fetch("x3d_xs") == 1
    err = capsys.readouterr().err
    assert "error [weights_missing]" in err
    assert f"cut short ({len(remote.body) // 2} of {len(remote.body)} bytes)" in err
    assert not (models / WEIGHTS).exists() and leftovers(models) == [] and read_lock(models) == {}


def test_offline_is_said_plainly(models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    point_at(models, f"http://weights.invalid/{WEIGHTS}")  # .invalid never resolves (RFC 6761)
    assert fetch("x3d_xs", "--timeout", "5") == 1
    err = capsys.readouterr().err
    assert "cannot reach weights.invalid" in err and "looks offline" in err and "models hash" in err
    assert not (models / WEIGHTS).exists()


def test_an_http_error_is_named(models: Path, remote: Remote, capsys: pytest.CaptureFixture[str]) -> None:
    point_at(models, f"{remote.base}/gone/{WEIGHTS}")
    assert fetch("x3d_xs") == 1
    assert "answered HTTP 404" in capsys.readouterr().err
    assert not (models / WEIGHTS).exists() and leftovers(models) == []


def test_several_names_each_get_their_answer(
    models: Path, remote: Remote, capsys: pytest.CaptureFixture[str]
) -> None:
    point_at(models, f"{remote.base}/ok/{WEIGHTS}")
    assert fetch("nope", "x3d_xs") == 2  # an unknown name is a usage error; the others still run
    assert (models / WEIGHTS).is_file()
    assert "error [unknown_model]" in capsys.readouterr().err
    assert fetch("x3d_xs", "x3d_s", "--sha256", "ab" * 32) == 2
    with pytest.raises(SystemExit):
        fetch("x3d_xs", "--sha256", "not-hex")


def test_a_full_disk_leaves_nothing(
    tmp_path: Path, remote: Remote, capsys: pytest.CaptureFixture[str]
) -> None:
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(small)], check=False)
    if mounted.returncode != 0:
        skip_or_fail("mounting a tmpfs needs root")
    try:
        point_at(small, f"{remote.base}/ok/{WEIGHTS}")
        with pytest.raises(WeightsMissing, match="No space left"):
            ModelLoader(small, auto_fetch=True).load(load_catalog(small).get("x3d_xs"))
        assert not (small / WEIGHTS).exists() and leftovers(small) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_auto_fetch_downloads_once_on_first_use(models: Path, remote: Remote) -> None:
    point_at(models, f"{remote.base}/ok/{WEIGHTS}")
    spec = load_catalog(models).get("x3d_xs")
    with pytest.raises(WeightsMissing, match="models fetch x3d_xs"):
        ModelLoader(models).load(spec)  # off by default: no download
    assert remote.requests == 0
    loaders = [ModelLoader(models, auto_fetch=True) for _ in range(3)]
    results: list[str] = []
    threads = [threading.Thread(target=lambda lo=lo: results.append(lo.load(spec).sha256)) for lo in loaders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    digest = hashlib.sha256(remote.body).hexdigest()
    assert results == [digest] * 3 and remote.requests == 1  # three workers, one download
    assert read_lock(models) == {WEIGHTS: digest}


def test_auto_fetch_offline_is_weights_missing_with_the_reason(models: Path) -> None:
    point_at(models, f"http://weights.invalid/{WEIGHTS}")
    with pytest.raises(WeightsMissing) as info:
        ModelLoader(models, auto_fetch=True, fetch_timeout=5).load(load_catalog(models).get("x3d_xs"))
    assert info.value.code == "weights_missing"
    assert "looks offline" in info.value.detail and str(models) in info.value.detail


def test_auto_fetch_refuses_bytes_that_differ_from_the_pin(models: Path, remote: Remote) -> None:
    point_at(models, f"{remote.base}/ok/{WEIGHTS}")
    (models / LOCK_NAME).write_text(json.dumps({WEIGHTS: "ef" * 32}))
    with pytest.raises(WeightsInvalid, match="nothing was written"):
        ModelLoader(models, auto_fetch=True).load(load_catalog(models).get("x3d_xs"))
    assert not (models / WEIGHTS).exists()


def test_the_setting_is_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAS_AUTO_FETCH", raising=False)
    assert Settings().auto_fetch is False
    monkeypatch.setenv("VAS_AUTO_FETCH", "true")
    assert Settings().auto_fetch is True
