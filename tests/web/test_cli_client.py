"""`python -m app submit/status/results` against a live server on loopback."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.web.conftest import LiveServer


def vas(server: LiveServer, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VAS_URL": server.base}
    env.pop("VAS_API_KEY", None)
    if key:
        env["VAS_API_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "app", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=180
    )


def test_submit_wait_status_and_csv_results(live_server: LiveServer, short_clip: Path) -> None:
    done = vas(live_server, "submit", str(short_clip), "--segment-seconds", "1", "--top-k", "2", "--wait")
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip()
    assert "upload short.mp4" in done.stderr and "100%" in done.stderr and "succeeded" in done.stderr

    status = vas(live_server, "status", job_id)
    assert status.returncode == 0 and json.loads(status.stdout)["status"] == "succeeded"

    results = vas(live_server, "results", job_id, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(results.stdout)))
    assert results.returncode == 0 and len(rows) == 4 * 2
    assert {r["rank"] for r in rows} == {"1", "2"}

    vtt = vas(live_server, "results", job_id, "--format", "vtt")
    assert vtt.stdout.startswith("WEBVTT")


def test_errors_have_exit_codes(live_server: LiveServer, tmp_path: Path) -> None:
    missing = vas(live_server, "status", "no-such-job")
    assert missing.returncode == 1 and "not_found" in missing.stderr
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    refused = vas(live_server, "submit", str(text))
    assert refused.returncode == 1 and "unsupported_media" in refused.stderr
    assert vas(live_server, "submit", str(tmp_path / "absent.mp4")).returncode == 2
    down = vas(live_server, "status", "x", "--url", "http://127.0.0.1:9")
    assert down.returncode == 2 and "cannot reach" in down.stderr


@pytest.mark.settings(auth_enabled=True)
def test_api_key_from_the_environment(live_server: LiveServer, short_clip: Path) -> None:
    from app.store.factory import open_access_stores, open_store

    store = open_store(live_server.settings)
    try:
        keys, _ = open_access_stores(live_server.settings, store)
        _, secret = keys.create_key("acme", "cli")
    finally:
        store.close()
    refused = vas(live_server, "submit", str(short_clip))
    assert refused.returncode == 1 and "unauthorized" in refused.stderr
    accepted = vas(live_server, "submit", str(short_clip), key=secret)
    assert accepted.returncode == 0, accepted.stderr
    status = vas(live_server, "status", accepted.stdout.strip(), key=secret)
    assert json.loads(status.stdout)["id"] == accepted.stdout.strip()
