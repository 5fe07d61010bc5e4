"""The deployment fixture: PostgreSQL (a fresh database on the local server), the one-shot
migration, 2 API replicas, 2 workers and nginx in front, all on loopback (see harness.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import REPO, skip_or_fail
from tests.contract.conftest import PG_DSN, _pg_url
from tests.deploy.harness import (
    Proc,
    find_nginx,
    free_port,
    load_compose,
    local_argv,
    render_nginx_conf,
    service_command,
    service_env,
    wait_http_ok,
)

# Faster than production so the whole test stays within a few minutes on 2 cores.
TEST_OVERRIDES = {
    "VAS_DEFAULT_MODEL": "x3d_xs",
    "VAS_DEVICE": "cpu",
    "VAS_LEASE_SECONDS": "4",
    "VAS_LISTEN_POLL_INTERVAL": "1",
    "VAS_BATCH_SIZE": "2",
    "VAS_DRAIN_SECONDS": "2",
    "VAS_TORCH_THREADS": "1",
    "OMP_NUM_THREADS": "1",
}


def _ensure_nginx() -> str:
    found = find_nginx()
    if found:
        return found
    script = REPO / "deploy" / "install-nginx.sh"
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=600)
    found = find_nginx()
    if not found:
        skip_or_fail(f"nginx not found and could not be installed: {result.stderr.strip()[-300:]}")
    return found


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def nginx_binary() -> str:
    return _ensure_nginx()


@dataclass
class Deployment:
    root: Path
    db_name: str
    db_url: str
    compose: dict[str, Any]
    models_dir: Path
    nginx_bin: str
    apis: list[Proc]
    workers: list[Proc]
    nginx: Proc | None = None
    api_key: str = ""
    """Created with the CLI after migrating (compose turns authentication on)."""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    @property
    def base(self) -> str:
        assert self.nginx is not None and self.nginx.port is not None
        return f"http://127.0.0.1:{self.nginx.port}"

    def replica_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.apis[index].port}"

    def env(self, service: str, **extra: str) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("VAS_") and k != "DATABASE_URL"}
        return {
            **inherited,
            **service_env(self.compose, service),
            "DATABASE_URL": self.db_url,
            "VAS_DATA_DIR": str(self.root / "data"),
            "VAS_MODELS_DIR": str(self.models_dir),
            "VAS_HOST": "127.0.0.1",
            **TEST_OVERRIDES,
            **extra,
        }

    def new_api(self, index: int, port: int | None = None) -> Proc:
        port = port or free_port()
        proc = Proc(
            name=f"api-{index}",
            argv=local_argv(service_command(self.compose, "api")),
            env=self.env("api", VAS_PORT=str(port)),
            log_path=self.root / "logs" / f"api-{index}.log",
            port=port,
        )
        return proc.start()

    def new_worker(self, index: int) -> Proc:
        port = free_port()
        proc = Proc(
            name=f"worker-{index}",
            argv=local_argv(service_command(self.compose, "worker")),
            env=self.env("worker", VAS_METRICS_PORT=str(port)),
            log_path=self.root / "logs" / f"worker-{index}.log",
            port=port,
        )
        return proc.start()

    def start_nginx(self) -> Proc:
        prefix = self.root / "nginx"
        prefix.mkdir(exist_ok=True)
        conf = prefix / "nginx.conf"
        port = free_port()
        conf.write_text(render_nginx_conf(port, [p.port for p in self.apis if p.port]))
        # compose runs `nginx -g "daemon off;"` with the file at /etc/nginx/nginx.conf; here the
        # prefix, config path and pid file point into the test's directory.
        globals_ = f"daemon off; pid {prefix / 'nginx.pid'};"
        if os.geteuid() == 0:
            globals_ += " user root;"  # workers must read the test's private temp dirs
        argv = [self.nginx_bin, "-e", "stderr", "-p", str(prefix), "-c", str(conf), "-g", globals_]
        self.nginx = Proc(
            "nginx", argv, dict(os.environ), self.root / "logs" / "nginx.log", port=port
        ).start()
        return self.nginx

    def all_procs(self) -> list[Proc]:
        return [*self.apis, *self.workers, *([self.nginx] if self.nginx else [])]

    def logs(self, lines: int = 30) -> str:
        return "\n".join(p.tail(lines) for p in self.all_procs())

    def db(self) -> psycopg.Connection[tuple[Any, ...]]:
        info = psycopg.conninfo.conninfo_to_dict(PG_DSN)
        info["dbname"] = self.db_name
        return psycopg.connect(psycopg.conninfo.make_conninfo(**info), autocommit=True, connect_timeout=5)


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, zoo_models_dir: Path, nginx_binary: str
) -> Iterator[Deployment]:
    try:
        admin = psycopg.connect(PG_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        skip_or_fail(f"PostgreSQL unreachable at {PG_DSN!r}: {exc}")
    db_name = f"vas_deploy_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{db_name}"')
    root = tmp_path_factory.mktemp("deployment")
    (root / "logs").mkdir()
    dep = Deployment(
        root=root,
        db_name=db_name,
        db_url=_pg_url(db_name),
        compose=load_compose(),
        models_dir=zoo_models_dir,
        nginx_bin=nginx_binary,
        apis=[],
        workers=[],
    )
    try:
        migrate = subprocess.run(
            local_argv(service_command(dep.compose, "migrate")),
            cwd=REPO,
            env=dep.env("migrate"),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        keys = subprocess.run(
            [*local_argv(["python", "-m", "app"]), "keys", "create", "--tenant", "deploy-test"],
            cwd=REPO,
            env=dep.env("migrate"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert keys.returncode == 0, keys.stdout + keys.stderr
        dep.api_key = keys.stdout.strip()
        dep.apis = [dep.new_api(i) for i in range(2)]
        dep.workers = [dep.new_worker(i) for i in range(2)]
        for api in dep.apis:
            wait_http_ok(f"http://127.0.0.1:{api.port}/readyz", dep.all_procs())
        for worker in dep.workers:
            wait_http_ok(f"http://127.0.0.1:{worker.port}/metrics", dep.all_procs())
        dep.start_nginx()
        wait_http_ok(f"{dep.base}/readyz", dep.all_procs(), timeout=20)
        yield dep
    finally:
        for proc in reversed(dep.all_procs()):
            proc.stop()
        with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=10) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        print(dep.logs(15), file=sys.stderr)
