"""torch's frame choice recorded by an export and learned by a torch-free job (``frame_choice``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from app.analysis.artifacts import cpu_model
from app.analysis.catalog import load_catalog
from app.analysis.frame_choice import (
    learn_from_export,
    learn_from_report,
    torch_answers,
    torch_version,
    window_sizes,
)
from app.analysis.plan import (
    WITHOUT_TORCH,
    emulated_subsample_indices,
    emulation_is_exact,
    forget_torch_answers,
    learn_torch_answers,
    uniform_subsample_indices,
)
from tests.conftest import REPO


@pytest.fixture(autouse=True)
def nothing_learned() -> Iterator[None]:
    forget_torch_answers()
    yield
    forget_torch_answers()


def torch_choice(n: int, t: int) -> list[int]:
    return [int(i) for i in torch.linspace(0, n - 1, t).clamp(0, n - 1).long().tolist()]


def test_the_recorded_answers_are_torchs_on_this_cpu(tmp_path: Path) -> None:
    spec = load_catalog(tmp_path).get("slowfast_r50")
    assert window_sizes(spec) == [8, 32]
    report = torch_answers(spec, up_to=600)
    assert (report["cpu"], report["torch"], report["up_to"]) == (cpu_model(), torch_version(), 600)
    assert set(report["differs"]) == {"8", "32"}
    for t, differs in report["differs"].items():
        for n in range(1, 601):
            recorded = differs.get(str(n))
            expected = torch_choice(n, int(t))
            if recorded is not None:
                assert recorded == expected and recorded != emulated_subsample_indices(n, int(t))
            elif not emulation_is_exact(n, int(t)):
                assert emulated_subsample_indices(n, int(t)) == expected, (
                    "an unrecorded window is the emulation's"
                )


def test_learned_answers_stand_in_for_torch_where_the_emulation_cannot_be_trusted() -> None:
    assert not emulation_is_exact(77, 13)
    made_up = [0, 6, 12, 19, 25, 31, 38, 44, 50, 57, 63, 69, 76]  # what another kernel might say
    learn_torch_answers(13, 100, {77: made_up})
    token = WITHOUT_TORCH.set(True)
    try:
        assert uniform_subsample_indices(77, 13) == made_up
        assert uniform_subsample_indices(89, 13) == emulated_subsample_indices(89, 13), (
            "covered, not different"
        )
        assert uniform_subsample_indices(401, 13) == emulated_subsample_indices(401, 13), "beyond: emulated"
    finally:
        WITHOUT_TORCH.reset(token)
    assert uniform_subsample_indices(77, 13) == torch_choice(77, 13), "torch loaded: torch answers"


def test_a_report_from_another_cpu_or_torch_teaches_nothing() -> None:
    good = {"cpu": cpu_model(), "torch": torch_version(), "up_to": 10, "differs": {"13": {}}}
    assert not learn_from_report({})
    assert not learn_from_report({"frame_choice": {**good, "cpu": "another CPU"}})
    assert not learn_from_report({"frame_choice": {**good, "torch": "1.0.0"}})
    assert learn_from_report({"frame_choice": good})


def test_the_cli_learns_from_the_report_beside_the_export(tmp_path: Path) -> None:
    xml = tmp_path / "X3D_S.openvino.xml"
    assert not learn_from_export(xml), "no report: nothing learned"
    choice = {"cpu": cpu_model(), "torch": torch_version(), "up_to": 100, "differs": {"13": {"77": [0] * 13}}}
    (tmp_path / "X3D_S.openvino.xml.json").write_text(json.dumps({"frame_choice": choice}))
    assert learn_from_export(xml)
    token = WITHOUT_TORCH.set(True)
    try:
        assert uniform_subsample_indices(77, 13) == [0] * 13
    finally:
        WITHOUT_TORCH.reset(token)


def test_a_torch_free_process_plans_ambiguous_windows_from_the_report(tmp_path: Path) -> None:
    """x3d_s at 29.97 fps: 77-frame windows, where only torch knows; the report answers, and the
    process never imports torch."""
    report = {"frame_choice": torch_answers(load_catalog(tmp_path).get("x3d_s"), up_to=200)}
    code = f"""
import json, sys
from app.analysis.frame_choice import learn_from_report
from app.analysis.plan import uniform_subsample_indices
assert learn_from_report(json.loads({json.dumps(json.dumps(report))}))
print(json.dumps([uniform_subsample_indices(n, 13) for n in (77, 78, 155)]))
assert "torch" not in sys.modules, "planning imported torch"
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == [torch_choice(n, 13) for n in (77, 78, 155)]
