"""The embedded default as a user runs it: `python -m app serve` over real HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import REPO


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "server exited during start-up"
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("server did not become ready")


def test_serve_migrates_and_runs_jobs_with_the_embedded_worker(
    tmp_path: Path, zoo_models_dir: Path, short_clip: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "VAS_DATA_DIR": str(tmp_path / "data"),
        "VAS_MODELS_DIR": str(zoo_models_dir),
        "VAS_DEFAULT_MODEL": "x3d_xs",
    }
    env.pop("DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
        with short_clip.open("rb") as fh:
            response = httpx.post(f"{base}/v1/jobs", files={"file": ("clip.mp4", fh)}, data={"top_k": "2"})
        assert response.status_code == 202, response.text
        location = response.headers["location"]
        deadline = time.monotonic() + 120
        while (job := httpx.get(base + location).json())["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
        assert job["status"] == "succeeded", job
        results = httpx.get(f"{base}{location}/results").json()
        assert results["segments"] and all(len(s["labels"]) == 2 for s in results["segments"])
        assert (tmp_path / "data" / "jobs.sqlite3").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0].decode(errors="replace")
    # uvicorn re-raises the signal after a clean shutdown, so -SIGTERM is a graceful exit too.
    assert proc.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output and "worker stopped" in output, output
    assert "authentication is off" in output


def test_sigterm_during_a_job_keeps_reads_served_and_releases_the_job(
    tmp_path: Path, zoo_models_dir: Path
) -> None:
    """SIGTERM to `serve`: readiness and new uploads go 503 at once, reads are still served
    while it drains, the embedded worker stops claiming and hands its job back (queued, not
    lost), and the next `serve` on the same data dir finishes it."""
    from tests.media import write_video

    long_clip = write_video(tmp_path / "long.mp4", seconds=30.0, width=96, height=72)
    env = {
        **os.environ,
        "VAS_DATA_DIR": str(tmp_path / "data"),
        "VAS_MODELS_DIR": str(zoo_models_dir),
        "VAS_DEFAULT_MODEL": "x3d_xs",
        "VAS_BATCH_SIZE": "1",
        "VAS_DRAIN_SECONDS": "3",
    }
    env.pop("DATABASE_URL", None)

    def serve(port: int) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "app", "serve", "--port", str(port)]
        return subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = serve(port)
    try:
        wait_ready(base, proc)
        with long_clip.open("rb") as fh:
            response = httpx.post(
                f"{base}/v1/jobs", files={"file": ("long.mp4", fh)}, data={"segment_seconds": "0.5"}
            )
        assert response.status_code == 202, response.text
        location = response.headers["location"]
        deadline = time.monotonic() + 120
        while (job := httpx.get(base + location).json())["progress"] <= 0:
            assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert httpx.get(f"{base}/readyz").status_code == 503
        assert httpx.get(base + location).status_code == 200, "reads are served while draining"
        with long_clip.open("rb") as fh:
            refused = httpx.post(f"{base}/v1/jobs", files={"file": ("again.mp4", fh)})
        assert refused.status_code == 503 and refused.json()["code"] == "draining"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=90)[0].decode(errors="replace")
    assert proc.returncode in (0, -signal.SIGTERM), output
    assert "job released" in output, output

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = serve(port)
    try:
        wait_ready(base, proc)
        released = httpx.get(base + location).json()
        assert released["status"] in ("queued", "running"), released
        deadline = time.monotonic() + 240
        while (job := httpx.get(base + location).json())["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, job
            time.sleep(0.5)
        # A job handed back on shutdown was not a failed attempt: the rerun is attempt 1 again.
        assert job["status"] == "succeeded" and job["attempts"] == 1, job
        assert len(httpx.get(f"{base}{location}/results").json()["segments"]) == 60
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=90)
