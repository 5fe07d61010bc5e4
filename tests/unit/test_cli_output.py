"""What the CLI prints on stderr: progress as plain lines off a terminal, no torch deprecation noise."""

from __future__ import annotations

import io
import os
import select
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli.progress import ProgressBar
from app.demo.synthetic import write_scripted_video
from tests.conftest import REPO


def test_progress_off_a_terminal_is_plain_throttled_lines() -> None:
    stream = io.StringIO()  # not a TTY, like a pipe or a CI log
    bar = ProgressBar("upload clip.mp4", stream=stream, min_interval=3600)
    for step in range(101):
        bar.update(step / 100)
    bar.update(1.0)
    bar.close()
    assert "\r" not in stream.getvalue()
    # the first update and the final 100% (never throttled, never repeated); the rest within the interval
    assert stream.getvalue().splitlines() == ["[  0%] upload clip.mp4", "[100%] upload clip.mp4"]


def test_progress_off_a_terminal_prints_one_line_per_change_once_the_interval_passed() -> None:
    stream = io.StringIO()
    bar = ProgressBar("analyse", stream=stream, min_interval=0)
    for fraction in (0.1, 0.1, 0.25, 0.5, 0.5, 1.0):
        bar.update(fraction)
    assert stream.getvalue().splitlines() == [f"[{p:3d}%] analyse" for p in (10, 25, 50, 100)]


def _drain(fd: int) -> str:
    """Everything written to a pty so far: one read may return only the first write."""
    chunks = []
    while select.select([fd], [], [], 0.5)[0]:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


def test_progress_on_a_terminal_redraws_one_line() -> None:
    leader, follower = os.openpty()  # a real terminal device
    try:
        with os.fdopen(follower, "w", closefd=False) as tty:
            bar = ProgressBar("analyse", stream=tty, width=10)
            assert bar.interactive
            bar.update(0.5)
            bar.update(1.0)
            bar.close()
        written = _drain(leader)
    finally:
        os.close(leader)
        os.close(follower)
    text = written.replace("\r\n", "\n")  # the terminal's own newline translation
    assert text.count("\r") == 2 and text.endswith("\r[##########] 100% analyse\n"), written
    assert "\r[#####.....]  50% analyse\r" in text


@pytest.fixture(scope="module")
def demo_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    clip = tmp_path_factory.mktemp("cli-output") / "demo.mp4"
    write_scripted_video(clip, [("moving right", 2), ("static", 2)])
    return clip


def test_analyze_prints_no_deprecation_warning_and_plain_progress(demo_clip: Path) -> None:
    """torch's "`torch.jit.script` is deprecated" FutureWarning came from fvcore's import-time
    scripting, reached through pytorchvideo on every run (app/analysis/pytorchvideo_import.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAS_")}
    done = subprocess.run(
        [sys.executable, "-W", "default", "-m", "app", "analyze", str(demo_clip), "--model", "demo_motion"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("model demo_motion")
    assert "Warning" not in done.stderr and "deprecated" not in done.stderr, done.stderr
    assert "\r" not in done.stderr and done.stderr.splitlines()[-1] == "[100%] demo.mp4 (demo_motion)"
