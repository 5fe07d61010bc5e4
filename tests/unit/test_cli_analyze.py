"""The ``analyze`` and ``models`` commands, registered on a parser in-process (as app/__main__ does)."""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from app.analysis.lockfile import read_lock
from app.cli import analyze_cmd, models_cmd
from tests.media import write_video


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="vas")
    sub = parser.add_subparsers(dest="command", required=True)
    analyze_cmd.register(sub)
    models_cmd.register(sub)
    args = parser.parse_args(list(argv))
    code: int = args.handler(args)
    return code


@pytest.fixture
def models(tmp_path: Path, zoo_models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(zoo_models_dir / "X3D_XS.pyth", models / "X3D_XS.pyth")
    monkeypatch.setenv("VAS_MODELS_DIR", str(models))
    monkeypatch.setenv("VAS_DEFAULT_MODEL", "x3d_xs")
    return models


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("cli") / "v.mp4", seconds=3, fps=30, width=64, height=48)


def test_table_by_default_with_progress_on_stderr(
    models: Path, video: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli("analyze", str(video)) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("model x3d_xs (kinetics400); video 3.00 s, 64x48 @ 30.00 fps; 2 segments")
    assert "top-1" in lines[2] and "score" in lines[2]
    assert lines[3].split()[:3] == ["0.00", "-", "1.50"] and lines[4].split()[:3] == ["1.50", "-", "3.00"]
    assert lines[-1].startswith("summary: ")
    assert "100%" in err and "[" in err


def test_json_output(models: Path, video: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        run_cli("analyze", str(video), "--json", "--segment-seconds", "1", "--top-k", "3", "--crops", "3")
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert len(result["segments"]) == 3 and all(len(s["labels"]) == 3 for s in result["segments"])
    assert result["options"]["crops"] == 3 and result["model"] == "x3d_xs"


def test_csv_output(models: Path, video: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("analyze", str(video), "--csv", "--top-k", "2", "--start", "1") == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["segment"], r["rank"]) for r in rows] == [("0", "1"), ("0", "2"), ("1", "1"), ("1", "2")]
    assert rows[0]["start"] == "1.000" and float(rows[0]["score"]) >= float(rows[1]["score"])


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--top-k", "0"], 2, "invalid_options"),
        (["--model", "nope"], 2, "unknown_model"),
        (["--model", "x3d_m"], 1, "weights_missing"),
        (["--start", "99"], 1, "no_frames"),
    ],
)
def test_errors_have_codes_and_exit_status(
    models: Path, video: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    assert run_cli("analyze", str(video), *argv) == code
    assert f"error [{message}]" in capsys.readouterr().err


def test_missing_file_and_bad_flags(models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("analyze", "/nonexistent.mp4") == 2
    with pytest.raises(SystemExit) as info:
        run_cli("analyze", "x.mp4", "--crops", "2")
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        run_cli("analyze", "x.mp4", "--json", "--csv")


def test_models_list_and_hash(models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("models", "list") == 0
    out = capsys.readouterr().out
    assert "x3d_xs" in out and "present" in out and "missing (X3D_M.pyth)" in out
    assert run_cli("models", "hash", "x3d_xs") == 0
    digest = hashlib.sha256((models / "X3D_XS.pyth").read_bytes()).hexdigest()
    assert read_lock(models) == {"X3D_XS.pyth": digest}
    capsys.readouterr()
    assert run_cli("models", "list", "--json") == 0
    items = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert items["x3d_xs"]["sha256"] == digest and items["x3d_m"]["weights_present"] is False
    assert run_cli("models", "hash", "x3d_m") == 1
    assert "X3D_M.pyth" in capsys.readouterr().err


def serve_dir(directory: Path) -> tuple[ThreadingHTTPServer, str]:
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_models_fetch_downloads_atomically_and_records_hash(
    models: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "X3D_S.pyth").write_bytes(b"x" * 3_000_000)
    server, base = serve_dir(remote)
    try:
        (models / "manifest.json").write_text(
            json.dumps({"models": [{"name": "x3d_s", "url": f"{base}/X3D_S.pyth"}]})
        )
        assert run_cli("models", "fetch", "x3d_s") == 0
    finally:
        server.shutdown()
    assert (models / "X3D_S.pyth").read_bytes() == (remote / "X3D_S.pyth").read_bytes()
    assert read_lock(models)["X3D_S.pyth"] == hashlib.sha256(b"x" * 3_000_000).hexdigest()
    assert not [p for p in models.iterdir() if p.name.endswith(".part")]
    assert "100%" in capsys.readouterr().err


def test_models_fetch_offline_names_file_and_url(models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = "http://127.0.0.1:9/X3D_S.pyth"
    (models / "manifest.json").write_text(json.dumps({"models": [{"name": "x3d_s", "url": url}]}))
    assert run_cli("models", "fetch", "x3d_s", "--timeout", "2") == 1
    err = capsys.readouterr().err
    assert "X3D_S.pyth" in err and url in err and str(models) in err
    assert not (models / "X3D_S.pyth").exists()
    assert run_cli("models", "fetch", "nope") == 2
