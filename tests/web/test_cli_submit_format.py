"""`vas submit --wait --format F > file`: the file holds the results and nothing else."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from tests.web.conftest import LiveServer
from tests.web.test_cli_client import vas

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def test_with_a_results_format_the_job_id_and_progress_go_to_stderr(
    live_server: LiveServer, short_clip: Path
) -> None:
    done = vas(live_server, "submit", str(short_clip), "--segment-seconds", "1", "--wait", "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert rows and done.stdout.splitlines()[0] == "segment,start,end,rank,label,class_id,score"
    assert not UUID.search(done.stdout), done.stdout[:300]
    job_id = UUID.search(done.stderr)
    assert job_id and f"job {job_id.group()}" in done.stderr
    # stderr is a pipe here: plain progress lines, no carriage-return redraws
    assert "\r" not in done.stderr and "[100%] upload short.mp4" in done.stderr.splitlines()


def test_without_a_format_the_job_id_is_stdout(live_server: LiveServer, short_clip: Path) -> None:
    done = vas(live_server, "submit", str(short_clip))
    assert done.returncode == 0 and UUID.fullmatch(done.stdout.strip()), done


def test_a_format_without_wait_is_a_usage_error(live_server: LiveServer, short_clip: Path) -> None:
    done = vas(live_server, "submit", str(short_clip), "--format", "csv")
    assert done.returncode == 2 and "--format" in done.stderr and done.stdout == ""
