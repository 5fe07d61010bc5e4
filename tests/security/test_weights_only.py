"""Every ``torch.load`` in the service, its benchmarks and scripts passes
``weights_only=True`` (a pickle can run code), ``models import`` included: a PySlowFast
checkpoint that pickles its yacs config is read without running yacs code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO

SCANNED = ("app", "bench", "scripts")


def _torch_load_calls() -> list[tuple[str, str, ast.Call]]:
    """(file, enclosing function or ``<module>``, call) of every ``torch.load(...)``."""
    found = []
    for top in SCANNED:
        for path in sorted((REPO / top).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            owner = {
                id(node): func.name
                for func in ast.walk(tree)
                if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef)
                for node in ast.walk(func)
            }
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "load"
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "torch"
                ):
                    found.append((str(path.relative_to(REPO)), owner.get(id(node), "<module>"), node))
    return found


def test_torch_load_is_weights_only() -> None:
    calls = _torch_load_calls()
    unsafe = set()
    for file, function, call in calls:
        flag = next((k.value for k in call.keywords if k.arg == "weights_only"), None)
        if not (isinstance(flag, ast.Constant) and flag.value is True):
            unsafe.add((file, function))
    assert not unsafe, f"torch.load without weights_only=True: {sorted(unsafe)}"
    where = {(f, fn) for f, fn, _ in calls}
    assert {
        ("app/analysis/loader.py", "read_state_dict"),
        ("app/analysis/convert.py", "load_checkpoint"),
        ("bench/reference.py", "main"),
    } <= where, "the scan finds the calls it is meant to check"


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pwned",))


def test_a_pickling_checkpoint_is_refused_by_the_loader(tmp_path: Path) -> None:
    from app.analysis.catalog import load_catalog
    from app.analysis.loader import read_state_dict
    from app.errors import WeightsInvalid

    spec = load_catalog(tmp_path).get("x3d_xs")
    path = tmp_path / spec.weights
    torch.save({"model_state": {"w": torch.zeros(1)}, "x": _Payload()}, path)
    with pytest.raises(WeightsInvalid):
        read_state_dict(path, spec)


def test_models_import_reads_a_pickled_yacs_config_as_plain_data(tmp_path: Path) -> None:
    """Older PySlowFast-style trainers pickle the CfgNode itself; it loads as an OrderedDict
    (yacs' class is never constructed) and the tensors come through."""
    from app.analysis.convert import load_checkpoint

    yacs = pytest.importorskip("yacs.config")
    cfg = yacs.CfgNode({"MODEL": yacs.CfgNode({"ARCH": "x3d"}), "NUM_GPUS": 8})
    cfg.freeze()
    path = tmp_path / "old.pyth"
    torch.save({"epoch": 3, "model_state": {"w": torch.ones(2)}, "cfg": cfg, "optimizer_state": {}}, path)
    checkpoint = load_checkpoint(path)
    assert type(checkpoint["cfg"]) is not yacs.CfgNode and checkpoint["cfg"]["MODEL"]["ARCH"] == "x3d"
    assert torch.equal(checkpoint["model_state"]["w"], torch.ones(2))


def test_models_import_refuses_a_checkpoint_that_runs_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.__main__ import main

    path = tmp_path / "evil.pyth"
    torch.save({"model_state": {"w": torch.zeros(1)}, "cfg": _Payload()}, path)
    out = tmp_path / "x.pyth"
    assert main(["models", "import", str(path), "--arch", "x3d_xs", "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "pickles objects other than tensors" in captured.err and "pwned" not in captured.out
    assert not out.exists()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint " * 16], ids=["empty", "garbage"])
def test_models_import_says_a_broken_file_is_not_a_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    from app.__main__ import main

    path = tmp_path / "broken.pyth"
    path.write_bytes(content)
    out = tmp_path / "x.pyth"
    assert main(["models", "import", str(path), "--arch", "x3d_xs", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "is not a readable torch checkpoint" in err and "Traceback" not in err
    assert not out.exists()
