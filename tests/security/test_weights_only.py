"""Every ``torch.load`` in the service passes ``weights_only=True`` (a pickle can run code);
the only other call is the operator's explicit ``models import --trust-pickle``."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

# (file, enclosing function) of the single call allowed to unpickle, behind --trust-pickle.
ALLOWED_UNSAFE = {("app/analysis/convert.py", "load_checkpoint")}


def _torch_load_calls() -> list[tuple[str, str, ast.Call]]:
    found = []
    for path in sorted((REPO / "app").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for func in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]:
            for node in ast.walk(func):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "load"
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "torch"
                ):
                    found.append((str(path.relative_to(REPO)), func.name, node))
    return found


def test_torch_load_is_weights_only() -> None:
    calls = _torch_load_calls()
    assert calls, "the loader calls torch.load somewhere"
    unsafe = set()
    for file, function, call in calls:
        flag = next((k.value for k in call.keywords if k.arg == "weights_only"), None)
        if not (isinstance(flag, ast.Constant) and flag.value is True):
            unsafe.add((file, function))
    assert unsafe <= ALLOWED_UNSAFE, (
        f"torch.load without weights_only=True: {sorted(unsafe - ALLOWED_UNSAFE)}"
    )
    assert ("app/analysis/loader.py", "read_state_dict") in {(f, fn) for f, fn, _ in calls}


def test_a_pickling_checkpoint_is_refused_by_the_loader(tmp_path: Path) -> None:
    import pytest
    import torch

    from app.analysis.catalog import load_catalog
    from app.analysis.loader import read_state_dict
    from app.errors import WeightsInvalid

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("pwned",))

    spec = load_catalog(tmp_path).get("x3d_xs")
    path = tmp_path / spec.weights
    torch.save({"model_state": {"w": torch.zeros(1)}, "x": Payload()}, path)
    with pytest.raises(WeightsInvalid):
        read_state_dict(path, spec)
