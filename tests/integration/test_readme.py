"""README.md's commands, run exactly as written against a live `make run`, so the README cannot drift.

The walk (see ``readme_walk``): the ``serve`` block's command starts the server on a free
port (``VAS_PORT``, which `make run` and the README's ``VAS_URL`` honour); the ``run`` blocks
run in README order in one shell, ``{id}`` / ``{key_id}`` replaced by the job / key id the
previous steps printed; then the server is restarted with ``VAS_AUTH_ENABLED=true`` for the
``auth`` blocks. Every command must exit 0 and pass the check of the one expectation its
text matches; a README command without an expectation fails the test, so a new command
gets a check when it is added.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO, skip_or_fail
from tests.integration.readme_walk import (
    MODES,
    Block,
    ServerProcess,
    ShellSession,
    Step,
    checkout_stand_in,
    readme_blocks,
    user_env,
    venv_running_the_tests,
)
from tests.integration.test_live_server import free_port

README = REPO / "README.md"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
CSV_HEADER = "segment,start,end,rank,label,class_id,score"
SERVER_READY_SECONDS = 480  # `make run` installs first when the venv's stamps are stale


@dataclass
class Walk:
    """What the steps learnt so far (the ids the README's placeholders stand for)."""

    base: str
    root: Path
    shell: ShellSession
    job_id: str | None = None
    key_id: str | None = None
    checked: list[str] = field(default_factory=list)

    def substitute(self, command: str) -> str:
        for placeholder, value in (("{id}", self.job_id), ("{key_id}", self.key_id)):
            if placeholder in command:
                assert value, f"{placeholder} in {command!r} but no earlier step printed one"
                command = command.replace(placeholder, value)
        return command


def as_json(step: Step) -> Any:
    try:
        return json.loads(step.out)
    except ValueError:
        raise AssertionError(f"not JSON:\n{step.describe()}") from None


def job_id_from(text: str, step: Step) -> str:
    found = UUID.findall(text)
    assert found, f"no job id printed:\n{step.describe()}"
    return found[-1]


def check_url(step: Step, walk: Walk) -> None:
    assert walk.shell.run('echo "$VAS_URL"').out.strip() == walk.base


def check_demo_clip(step: Step, walk: Walk) -> None:
    clip = walk.root / "data" / "demo.mp4"
    assert clip.is_file() and clip.stat().st_size > 10_000, step.describe()
    assert not (walk.root / "demo.mp4").exists(), "the demo clip must not land in the repository root"


def check_analyze(step: Step, walk: Walk) -> None:
    assert step.out.startswith("model demo_motion"), step.describe()
    rows = [line.split() for line in step.out.splitlines() if re.match(r"\s+\d+\.\d\d - ", line)]
    tops = [" ".join(row[3:5]) for row in rows]
    assert tops[:2] == ["moving right"] * 2 and tops[-2:] == ["moving up"] * 2, step.out
    assert "deprecated" not in step.err, step.err  # torch's jit.script FutureWarning (issue 12)


def check_models_list(step: Step, walk: Walk) -> None:
    assert "demo_motion" in step.out, step.describe()


def check_submitted(step: Step, walk: Walk) -> None:
    job = as_json(step)
    assert job["status"] in ("queued", "running", "succeeded") and job["model"] == "demo_motion", job
    walk.job_id = job["id"]


def check_events(step: Step, walk: Walk) -> None:
    assert "event: status" in step.out and '"succeeded"' in step.out, step.describe()


def check_job(step: Step, walk: Walk) -> None:
    job = as_json(step)
    assert job["id"] == walk.job_id and job["status"] == "succeeded", job


def check_results_json(step: Step, walk: Walk) -> None:
    results = as_json(step)
    assert results["job_id"] == walk.job_id and results["segments"], step.describe()


def check_jsonl(step: Step, walk: Walk) -> None:
    lines = [json.loads(line) for line in step.out.splitlines()]
    assert lines and [line["index"] for line in lines] == list(range(len(lines))), step.out


def check_csv_page(step: Step, walk: Walk) -> None:
    assert step.out.splitlines()[0] == CSV_HEADER, step.describe()
    rows = list(csv.DictReader(io.StringIO(step.out)))
    assert {row["segment"] for row in rows} == {"0", "1"}, step.out


def check_vtt(step: Step, walk: Walk) -> None:
    assert step.out.startswith("WEBVTT"), step.describe()


def check_srt(step: Step, walk: Walk) -> None:
    assert step.out.startswith("1\n") and " --> " in step.out, step.describe()


def check_job_list(step: Step, walk: Walk) -> None:
    assert walk.job_id in [job["id"] for job in as_json(step)["items"]], step.out


def check_catalog(step: Step, walk: Walk) -> None:
    assert "demo_motion" in step.out and as_json(step), step.describe()


def check_deleted(step: Step, walk: Walk) -> None:
    assert step.out == "", step.describe()
    assert httpx.get(f"{walk.base}/v1/jobs/{walk.job_id}").status_code == 404


def check_cli_submitted(step: Step, walk: Walk) -> None:
    assert UUID.fullmatch(step.out.strip()), step.describe()
    assert "succeeded" in step.err and "[100%]" in step.err and "\r" not in step.err, step.err
    walk.job_id = step.out.strip()


def check_cli_status(step: Step, walk: Walk) -> None:
    assert as_json(step)["id"] == walk.job_id


def check_cli_csv_file(step: Step, walk: Walk) -> None:
    assert step.out == "", step.describe()
    walk.job_id = job_id_from(step.err, step)
    written = (walk.root / "data" / "out.csv").read_text()
    assert written.splitlines()[0] == CSV_HEADER and not UUID.search(written), written[:500]


def check_key_created(step: Step, walk: Walk) -> None:
    found = re.search(r"created key ([0-9a-f]{16})", step.err)
    assert found, step.describe()
    walk.key_id = found.group(1)


def check_key_listed(step: Step, walk: Walk) -> None:
    assert walk.key_id in step.out and "acme" in step.out, step.describe()


def check_revoked(step: Step, walk: Walk) -> None:
    assert f"revoked key {walk.key_id}" in step.out, step.describe()
    probe = walk.shell.run(
        'curl -s -o /dev/null -w "%{http_code}" -H "Authorization: Bearer $KEY" $VAS_URL/v1/jobs'
    )
    assert probe.out == "401", probe.describe()


def check_keyed_list(step: Step, walk: Walk) -> None:
    assert as_json(step)["items"] == [], step.describe()  # a new tenant sees none of the others' jobs


EXPECTATIONS: list[tuple[str, Callable[[Step, Walk], None]]] = [
    (r"export VAS_URL=", check_url),
    (r"mkdir -p data && .*write_scripted_video", check_demo_clip),
    (r"\.venv/bin/vas analyze data/demo\.mp4 --model demo_motion", check_analyze),
    (r"\.venv/bin/vas models list$", check_models_list),
    (r"curl -F file=@data/demo\.mp4 -F model=demo_motion ", check_submitted),
    (r"curl -N \$VAS_URL/v1/jobs/\{id\}/events$", check_events),
    (r"curl \$VAS_URL/v1/jobs/\{id\}$", check_job),
    (r"curl \$VAS_URL/v1/jobs/\{id\}/results$", check_results_json),
    (r"curl \"\$VAS_URL/v1/jobs/\{id\}/results\?format=jsonl\"$", check_jsonl),
    (r"curl \"\$VAS_URL/v1/jobs/\{id\}/results\?format=csv&limit=2\"$", check_csv_page),
    (r"curl -H 'Accept: text/vtt' \$VAS_URL/v1/jobs/\{id\}/results$", check_vtt),
    (r"curl \"\$VAS_URL/v1/jobs/\{id\}/results\?format=srt\"$", check_srt),
    (r"curl \"\$VAS_URL/v1/jobs\?status=succeeded&limit=20\"$", check_job_list),
    (r"curl \$VAS_URL/v1/models$", check_catalog),
    (r"curl -X DELETE \$VAS_URL/v1/jobs/\{id\}$", check_deleted),
    (
        r"(VAS_API_KEY=\$KEY )?\.venv/bin/vas submit data/demo\.mp4 --model demo_motion --wait$",
        check_cli_submitted,
    ),
    (r"\.venv/bin/vas status \{id\}$", check_cli_status),
    (r"\.venv/bin/vas results \{id\} --format srt$", check_srt),
    (r"\.venv/bin/vas submit .* --wait --format csv > data/out\.csv$", check_cli_csv_file),
    (r"KEY=\$\(\.venv/bin/vas keys create --tenant acme", check_key_created),
    (r"curl -H \"Authorization: Bearer \$KEY\" \$VAS_URL/v1/jobs$", check_keyed_list),
    (r"\.venv/bin/vas keys list$", check_key_listed),
    (r"\.venv/bin/vas keys revoke \{key_id\}$", check_revoked),
]


def without_comment(command: str) -> str:
    """The command without its trailing ``# comment`` (for matching only; it runs as written)."""
    quote = None
    for i, char in enumerate(command):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or command[i - 1].isspace()):
            return command[:i].strip()
    return command.strip()


def expectation(command: str) -> Callable[[Step, Walk], None]:
    bare = without_comment(command)
    for pattern, check in EXPECTATIONS:
        if re.match(pattern, bare):
            return check
    raise AssertionError(f"README command without an expectation in tests/integration/test_readme.py: {bare}")


def run_block(block: Block, walk: Walk) -> None:
    for written in block.commands:
        check = expectation(written)
        step = walk.shell.run(walk.substitute(written))
        assert step.rc == 0, f"README line {block.line} failed:\n{step.describe()}"
        check(step, walk)
        walk.checked.append(without_comment(written))


def server_command(blocks: list[Block]) -> str:
    serve = [b for b in blocks if b.mode == "serve"]
    assert len(serve) == 1 and len(serve[0].commands) == 1, "one `serve` block with one command"
    return serve[0].commands[0]


def test_every_shell_block_is_run_or_says_why_not() -> None:
    blocks = readme_blocks(README.read_text())
    unmarked = [b.line for b in blocks if b.mode is None]
    assert not unmarked, f"README shell blocks without a <!-- readme-test --> marker at lines {unmarked}"
    assert all(b.mode in MODES for b in blocks), [(b.line, b.mode) for b in blocks]
    assert all(b.why for b in blocks if b.mode == "skip"), "a skipped block says why"
    assert server_command(blocks).split("#")[0].strip() == "make run"
    for block in blocks:
        if block.mode in ("run", "auth"):
            for command in block.commands:
                expectation(command)


def test_files_the_walkthrough_writes_are_git_ignored() -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        skip_or_fail("git and a git checkout are needed to ask what is ignored")
    commands = [c for b in readme_blocks(README.read_text()) if b.mode in ("run", "auth") for c in b.commands]
    written = {m for c in commands for m in re.findall(r"w\('([^']+)'|> (\S+)", without_comment(c))}
    paths = sorted({path for pair in written for path in pair if path})
    assert "data/demo.mp4" in paths and "data/out.csv" in paths, paths
    ignored = subprocess.run(["git", "check-ignore", *paths], cwd=REPO, capture_output=True, text=True)
    assert ignored.stdout.split() == paths, f"not git-ignored: {set(paths) - set(ignored.stdout.split())}"


def test_a_failing_readme_command_fails_the_walk(tmp_path: Path) -> None:
    (block,) = readme_blocks("<!-- readme-test -->\n```sh\nexport VAS_URL=http://127.0.0.1:9  # x\n```\n")
    shell = ShellSession(tmp_path, user_env(9, tmp_path), tmp_path / "shell")
    try:
        walk = Walk("http://127.0.0.1:9", tmp_path, shell)
        run_block(block, walk)  # passes: the check compares $VAS_URL with the base
        broken = Block(1, "run", "", ("export VAS_URL=http://127.0.0.1:9; false",))
        with pytest.raises(AssertionError, match="README line 1 failed"):
            run_block(broken, walk)
    finally:
        shell.close()


def test_readme_walkthrough_runs_as_written(tmp_path: Path) -> None:
    if shutil.which("curl") is None or shutil.which("make") is None:
        skip_or_fail("curl and make are needed to run the README's commands")
    venv = venv_running_the_tests()
    if not (venv / "bin" / "vas").is_file():
        skip_or_fail(f"{venv} has no `vas` console script (install the project: make run)")
    blocks = readme_blocks(README.read_text())
    root = checkout_stand_in(REPO, tmp_path / "checkout", venv)
    port = free_port()
    env = user_env(port, root)
    server_env = {**env, "VAS_DRAIN_SECONDS": "0"}
    base = f"http://127.0.0.1:{port}"
    shell = ShellSession(root, env, tmp_path / "shell")
    walk = Walk(base, root, shell)
    server: ServerProcess | None = None
    try:
        for block in blocks:
            if block.mode == "serve":
                server = ServerProcess(server_command(blocks), root, server_env, tmp_path / "serve.log")
                server.wait_ready(base, SERVER_READY_SECONDS)
            elif block.mode == "run":
                run_block(block, walk)
        assert server is not None
        server.stop()
        auth_env = {**server_env, "VAS_AUTH_ENABLED": "true"}
        server = ServerProcess(server_command(blocks), root, auth_env, tmp_path / "serve-auth.log")
        server.wait_ready(base, SERVER_READY_SECONDS)
        for block in blocks:
            if block.mode == "auth":
                run_block(block, walk)
    finally:
        if server is not None:
            server.stop()
        shell.close()
    assert len(walk.checked) >= 20, walk.checked
