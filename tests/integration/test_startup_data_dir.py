"""``serve``, ``worker`` and ``migrate`` as real processes, started on a data dir they cannot
use: a read-only mount (root ignores permission bits, a read-only file system does not) and a
path under a regular file. Each must exit non-zero with one line that names the path and the
setting, not a SQLAlchemy traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.test_live_server import free_port
from tests.mounts import tmpfs

COMMANDS = ["serve", "worker", "migrate"]


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """An empty read-only tmpfs."""
    with tmpfs(tmp_path / "ro", "ro,size=1m") as target:
        yield target


def start(command: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAS_")}
    env.update(VAS_DATA_DIR=str(data_dir), VAS_PORT=str(free_port()), VAS_HOST="127.0.0.1")
    return subprocess.run(
        [sys.executable, "-m", "app", command], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def assert_one_clear_line(result: subprocess.CompletedProcess[str], command: str, *words: str) -> None:
    assert result.returncode != 0, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(f"vas {command}: cannot start: data dir "), lines[0]
    for word in (*words, "VAS_DATA_DIR"):
        assert word in lines[0], (word, lines[0])


@pytest.mark.parametrize("command", COMMANDS)
def test_a_read_only_data_dir_is_one_line(command: str, read_only_dir: Path) -> None:
    result = start(command, read_only_dir)
    assert_one_clear_line(result, command, str(read_only_dir), "not writable", "read-only file system")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_data_dir_that_cannot_be_created_is_one_line(command: str, tmp_path: Path) -> None:
    regular_file = tmp_path / "a-file"
    regular_file.write_text("not a directory")
    data_dir = regular_file / "data"
    result = start(command, data_dir)
    assert_one_clear_line(
        result, command, str(data_dir), "cannot be created", f"{regular_file} is not a directory"
    )
    assert regular_file.read_text() == "not a directory"


def test_a_missing_data_dir_that_can_be_created_is_created(tmp_path: Path) -> None:
    data_dir = tmp_path / "new" / "data"
    result = start("migrate", data_dir)
    assert result.returncode == 0, result.stderr
    assert (data_dir / "jobs.sqlite3").is_file()
    assert not [p.name for p in data_dir.iterdir() if p.name.startswith(".write-check-")]
