"""What every benchmark here shares: the checkpoints, running a process while sampling its
memory, our CLI and the tutorial pipeline as processes, the in-process bounds
(``bounds.py``), and Markdown output."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"

HUB = {
    "x3d_xs": ("x3d_xs", "X3D_XS.pyth"),
    "x3d_s": ("x3d_s", "X3D_S.pyth"),
    "x3d_m": ("x3d_m", "X3D_M.pyth"),
    "slowfast_r50": ("slowfast_r50", "SLOWFAST_8x8_R50.pyth"),
    "mvit_base_16x4": ("mvit_base_16x4", "MVIT_B_16x4.pyth"),
}
SEGMENT = 2.0


def write_checkpoint(models_dir: Path, model: str) -> None:
    builder, file_name = HUB[model]
    path = models_dir / file_name
    if path.is_file():
        return
    code = (
        "import sys, torch; from pytorchvideo.models import hub; torch.manual_seed(0); "
        f"m = hub.{builder}(pretrained=False); "
        f"torch.save({{'model_state': m.state_dict()}}, {str(path)!r})"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for tid in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{tid}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return found


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Run:
    seconds: float
    peak_rss_mib: float
    stdout: str = ""
    cpu_seconds: float = 0.0
    """User + system time of the process and the children it waited for."""


def run_process(argv: list[str], env: dict[str, str] | None = None) -> Run:
    """Wall time of the whole process, and the peak summed RSS of its process tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.1):
            peak = max(peak, sum(_rss_kib(p) for p in _tree(proc.pid)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return Run(seconds, peak / 1024, stdout, cpu)


def ours(
    video: Path,
    model: str,
    models_dir: Path,
    extra_env: dict[str, str] | None = None,
    extra_args: Sequence[str] = (),
) -> Run:
    """``python -m app analyze`` as a process (``--json``: the results land in ``stdout``)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "VAS_MODELS_DIR": str(models_dir),
        "VAS_DATA_DIR": str(OUT / "data"),
        "VAS_LOG_LEVEL": "warning",
        **(extra_env or {}),
    }
    argv = [sys.executable, "-m", "app", "analyze", str(video), "--model", model]
    return run_process([*argv, "--segment-seconds", str(SEGMENT), *extra_args, "--json"], env)


def reference(video: Path, model: str, models_dir: Path) -> Run:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    argv = [sys.executable, str(BENCH / "reference.py"), str(video), "--model", model]
    return run_process([*argv, "--models-dir", str(models_dir)], env)


def bound(*args: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, str(BENCH / "bounds.py"), *args], cwd=REPO, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} vCPUs ({cpu}), Python {platform.python_version()}"


def log(message: str) -> None:
    print(
        f"[{time.strftime('%H:%M:%S')}] {message} (load {os.getloadavg()[0]:.1f})",
        file=sys.stderr,
        flush=True,
    )
