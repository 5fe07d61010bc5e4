"""Run README.md's shell blocks as a user would: parse them, a copy of the checkout, one shell.

Every ```sh block in the README carries a marker just before it (an HTML comment, invisible
when rendered): ``<!-- readme-test -->`` (run its commands), ``<!-- readme-test: serve -->``
(its one command starts the server), ``<!-- readme-test: auth -->`` (run against the server
started with ``VAS_AUTH_ENABLED=true``) or ``<!-- readme-test: skip (why) -->``.

The commands run in ONE bash session (so ``export`` and ``KEY=$(...)`` carry over, as in a
terminal), from a stand-in for the repository root: every top-level entry of the checkout
symlinked, except ``.venv`` (-> the virtualenv running the tests, which is the checkout's
``.venv`` locally and ``$VENV`` in CI) and ``data`` (an empty folder, so the server's database,
uploads and the README's demo clip stay out of the real checkout; ``VAS_DATA_DIR`` points the
service there, since its default is the checkout's own ``data/``, found from the package).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

MODES = ("run", "serve", "auth", "skip")
_MARKER = re.compile(r"<!--\s*readme-test(?::\s*(?P<mode>\w+))?(?:\s*\((?P<why>.*?)\))?\s*-->")
_FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```\s*$", re.M | re.S)
_SHELL_LANGS = ("sh", "bash", "shell", "console")


@dataclass(frozen=True)
class Block:
    """One fenced shell block: where it is, how the walk treats it, its commands."""

    line: int
    mode: str | None  # None: a shell block without a marker (a test reports it)
    why: str
    commands: tuple[str, ...]


def shell_commands(body: str) -> tuple[str, ...]:
    """The block's command lines (``\\``-continuations joined; blank and comment lines dropped)."""
    joined = re.sub(r"\\\n\s*", " ", body)
    return tuple(line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#"))


def readme_blocks(text: str) -> list[Block]:
    """Every shell block of the README, in order, with the marker just before it (if any)."""
    blocks = []
    for fence in _FENCE.finditer(text):
        if fence.group("lang") not in _SHELL_LANGS:
            continue
        before = text[: fence.start()].rstrip().rsplit("\n", 1)[-1]
        marker = _MARKER.fullmatch(before.strip())
        mode = (marker.group("mode") or "run") if marker else None
        why = (marker.group("why") or "") if marker else ""
        line = text.count("\n", 0, fence.start()) + 1
        blocks.append(Block(line, mode, why, shell_commands(fence.group("body"))))
    return blocks


def checkout_stand_in(repo: Path, root: Path, venv: Path) -> Path:
    """``root`` made to look like the checkout (see the module docstring); returns it."""
    root.mkdir(parents=True)
    for entry in repo.iterdir():
        if entry.name not in (".venv", "data", ".git"):
            (root / entry.name).symlink_to(entry)
    (root / ".venv").symlink_to(venv)
    (root / "data").mkdir()
    return root


def user_env(port: int, root: Path) -> dict[str, str]:
    """A user's environment: no VAS_* or DATABASE_URL from the test run, the port via VAS_PORT
    (which `make run` and the README's ``VAS_URL`` honour), the stand-in's ``data/``, and no
    activated virtualenv (no VENV, the venv's bin/ off PATH: the README must say `.venv/bin/`);
    nothing from an outer `make test` (its MAKEFLAGS would pass ``VENV=`` on to `make run`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAS_")}
    venv_bins = {str(Path(sys.prefix) / "bin"), str(Path(os.environ.get("VIRTUAL_ENV", sys.prefix)) / "bin")}
    env["PATH"] = os.pathsep.join(d for d in env.get("PATH", "").split(os.pathsep) if d not in venv_bins)
    for name in ("DATABASE_URL", "VENV", "VIRTUAL_ENV", "PYTHONPATH", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
        env.pop(name, None)
    env["VAS_PORT"] = str(port)
    env["VAS_DATA_DIR"] = str(root / "data")
    return env


@dataclass(frozen=True)
class Step:
    command: str
    rc: int
    out: str
    err: str

    def describe(self) -> str:
        return f"$ {self.command}\n(exit {self.rc})\n--- stdout\n{self.out[-3000:]}\n--- stderr\n{self.err[-3000:]}"


class ShellSession:
    """One ``bash`` reading commands from a pipe; each command's stdout, stderr and exit status
    land in files (its stdin is /dev/null so it cannot eat the following commands)."""

    def __init__(self, cwd: Path, env: dict[str, str], scratch: Path) -> None:
        self.scratch, self._count = scratch, 0
        scratch.mkdir(parents=True, exist_ok=True)
        self._log = (scratch / "session.log").open("wb")
        self._proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def run(self, command: str, *, timeout: float = 300) -> Step:
        self._count += 1
        out, err, rc = (self.scratch / f"{self._count}.{part}" for part in ("out", "err", "rc"))
        q = shlex.quote
        script = (
            f"{{ {command}\n}} >{q(str(out))} 2>{q(str(err))} </dev/null; "
            f"echo $? >{q(str(rc))}.tmp; mv {q(str(rc))}.tmp {q(str(rc))}\n"
        )
        stdin: IO[bytes] | None = self._proc.stdin
        assert stdin is not None
        stdin.write(script.encode())
        stdin.flush()
        deadline = time.monotonic() + timeout
        while not rc.exists():
            assert self._proc.poll() is None, f"the shell exited during: {command}"
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s: {command}")
            time.sleep(0.1)
        read = lambda p: p.read_text(errors="replace") if p.exists() else ""  # noqa: E731
        return Step(command, int(rc.read_text().strip()), read(out), read(err))

    def close(self) -> None:
        if self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait(timeout=30)
        self._log.close()


class ServerProcess:
    """The README's server command (``make run``) in the background, in its own process group."""

    def __init__(self, command: str, cwd: Path, env: dict[str, str], log: Path) -> None:
        self.command, self.log = command, log
        self._log = log.open("wb")
        self._proc = subprocess.Popen(
            ["bash", "-c", command],
            cwd=cwd,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def wait_ready(self, base: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise AssertionError(f"`{self.command}` exited ({self._proc.returncode}):\n{self.output()}")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"`{self.command}` not ready after {timeout:.0f} s:\n{self.output()}")

    def stop(self) -> None:
        if self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait(timeout=30)
        self._log.close()


def venv_running_the_tests() -> Path:
    """The virtualenv of this interpreter (the README's `.venv`, or CI's ``$VENV``)."""
    return Path(sys.prefix)
