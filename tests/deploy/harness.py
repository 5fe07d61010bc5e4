"""Run the compose deployment as plain processes on loopback.

Everything a process is started with comes from docker-compose.yml: the command (only the
interpreter is swapped for this venv's), and the environment (compose's values, with the
addresses, paths and a few test speed-ups overridden). nginx runs deploy/nginx.conf with
only the lines marked ``deploy-test`` rendered for loopback.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.conftest import REPO

COMPOSE_FILE = REPO / "docker-compose.yml"
NGINX_CONF = REPO / "deploy" / "nginx.conf"
UPSTREAM_LINE = "        server api:8000 max_fails=0;  # deploy-test: one line per replica\n"
LISTEN_LINE = "        listen 8080;  # deploy-test: loopback address\n"
_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def load_compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${NAME}`` / ``${NAME:-default}`` substitution."""
    return _INTERPOLATION.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)


def service_command(compose: dict[str, Any], service: str) -> list[str]:
    command = compose["services"][service]["command"]
    assert isinstance(command, list), f"{service}: use the exec (list) form"
    return [str(part) for part in command]


def service_env(compose: dict[str, Any], service: str) -> dict[str, str]:
    raw = compose["services"][service].get("environment") or {}
    return {str(k): interpolate(str(v), {}) for k, v in raw.items()}


def local_argv(command: list[str]) -> list[str]:
    """The compose command with ``python`` replaced by this interpreter."""
    assert command[0] == "python", command
    return [sys.executable, *command[1:]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_nginx() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def render_nginx_conf(listen_port: int, upstream_ports: list[int]) -> str:
    text = NGINX_CONF.read_text()
    assert text.count(UPSTREAM_LINE) == 1 and text.count(LISTEN_LINE) == 1, "deploy-test lines changed"
    servers = "".join(f"        server 127.0.0.1:{port} max_fails=0;\n" for port in upstream_ports)
    return text.replace(UPSTREAM_LINE, servers).replace(
        LISTEN_LINE, f"        listen 127.0.0.1:{listen_port};\n"
    )


@dataclass
class Proc:
    """A started process, its log file and what it was started with (to restart it)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    port: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def start(self) -> Proc:
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.argv, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int:
        assert self.popen is not None
        return self.popen.wait(timeout=timeout)

    def stop(self, timeout: float = 30) -> None:
        if not self.alive():
            return
        self.signal(signal.SIGTERM)
        try:
            self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.wait(10)

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return f"--- {self.name} ({self.log_path}) ---\n" + "\n".join(text.splitlines()[-lines:])


def wait_http_ok(url: str, procs: list[Proc], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        for proc in procs:
            assert proc.alive(), f"{proc.name} exited during start-up\n{proc.tail()}"
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.TransportError as exc:
            last = repr(exc)
        time.sleep(0.2)
    tails = "\n".join(p.tail() for p in procs)
    raise AssertionError(f"{url} not ready after {timeout}s: {last}\n{tails}")
