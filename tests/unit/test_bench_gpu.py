"""``bench/gpu.py`` runs its whole path on the CPU (``--dry-run``) and stops at once without CUDA."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent.parent
SCRIPT = REPO / "bench" / "gpu.py"


def run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_dry_run_measures_every_row(tmp_path: Path) -> None:
    out = tmp_path / "gpu.md"
    done = run("--dry-run", "--seconds", "2", "--jobs", "2", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split(" | ") for line in out.read_text().splitlines() if line.startswith("| x3d_xs")]
    names = [r[2] for r in rows]
    assert names == [
        "PyTorchVideo tutorial",
        "ours, 1 job (CPU decode)",
        "ours, 2 jobs in flight",
        "decode-only (1 child)",
        "inference-only, eager fp32",
        "inference-only, autocast bfloat16",
        "inference-only, TensorRT",
        "ours in flight at % of the slower bound",
    ]
    for r in rows[:6]:
        assert float(r[3]) > 0 and float(r[4]) > 0, r  # wall seconds and a rate
    assert rows[6][-1].strip(" |") == "needs CUDA"
    assert out.read_text().startswith("Card: no GPU")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_cuda_it_fails_fast_with_the_reason() -> None:
    done = run("--models", "x3d_s", timeout=60)
    assert done.returncode != 0
    assert "needs CUDA" in done.stderr and "--dry-run" in done.stderr
