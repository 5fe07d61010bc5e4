"""``models add`` / ``models remove``: checks before anything is written, atomic writes, and a
catalog that sees the change without a restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from app.__main__ import main
from app.analysis.catalog import load_catalog
from app.analysis.custom_model import read_label_names
from app.analysis.loader import ModelLoader
from app.analysis.lockfile import read_lock
from tests.unit.test_export_import import to_native

LABELS = ["chopping", "stirring", "pouring", "washing dishes", "idle"]


@pytest.fixture
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv("VAS_MODELS_DIR", str(folder))
    return folder


def x3d_s_checkpoint(
    path: Path, classes: int = 5, *, native: bool = False, seed: int = 0
) -> dict[str, torch.Tensor]:
    from pytorchvideo.models.hub import x3d_s

    torch.manual_seed(seed)
    state = dict(x3d_s(pretrained=False, model_num_class=classes).state_dict())
    torch.save({"epoch": 10, "model_state": to_native(state) if native else state}, path)
    return state


def labels_file(tmp_path: Path, names: list[str] = LABELS, suffix: str = ".txt") -> Path:
    path = tmp_path / f"labels{suffix}"
    path.write_text("\n".join(names) + "\n" if suffix == ".txt" else json.dumps(names))
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if not p.name.endswith(".lock")}


def add(name: str, checkpoint: Path, labels: Path, *extra: str, arch: str = "x3d_s") -> int:
    args = ["models", "add", name, "--checkpoint", str(checkpoint), "--arch", arch, "--labels", str(labels)]
    return main([*args, *extra])


def test_add_writes_weights_labels_hash_and_entry_and_remove_takes_them_out(
    models: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = load_catalog(models)  # a reader opened before the add: it must see the new model
    state = x3d_s_checkpoint(tmp_path / "ft.pyth")
    assert add("kitchen", tmp_path / "ft.pyth", labels_file(tmp_path)) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["name"] == "kitchen" and printed["weights_present"] is True
    assert printed["builder"] == "pytorchvideo.models.hub.x3d_s" and printed["builder_kwargs"] == {
        "model_num_class": 5
    }
    assert (printed["frames"], printed["sampling_rate"], printed["crop"]) == (13, 6, 182)
    assert printed["sha256"] == read_lock(models)["kitchen.pyth"] and printed["task"] == "classification"
    spec = before.get("kitchen")
    assert spec.source == "manifest" and json.loads((models / "kitchen_labels.json").read_text()) == LABELS
    loaded = ModelLoader(models).load(spec).module
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())

    assert main(["models", "remove", "kitchen"]) == 0
    assert "kitchen" not in before.names()
    assert not (models / "kitchen.pyth").exists() and not (models / "kitchen_labels.json").exists()
    assert "kitchen.pyth" not in read_lock(models)
    assert json.loads((models / "manifest.json").read_text())["models"] == []


def test_a_head_that_does_not_match_the_labels_names_both_counts(
    models: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x3d_s_checkpoint(tmp_path / "ft.pyth", classes=5)
    assert add("four", tmp_path / "ft.pyth", labels_file(tmp_path, LABELS[:4], ".json")) == 1
    err = capsys.readouterr().err
    assert "has 5 outputs" in err and "lists 4 labels" in err and "blocks.5.proj.weight" in err
    assert snapshot(models) == {}


def test_pyslowfast_names_need_the_flag_and_then_convert(
    models: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = x3d_s_checkpoint(tmp_path / "native.pyth", native=True, seed=4)
    assert add("native", tmp_path / "native.pyth", labels_file(tmp_path)) == 1
    assert "--from-pyslowfast" in capsys.readouterr().err and snapshot(models) == {}
    assert add("native", tmp_path / "native.pyth", labels_file(tmp_path), "--from-pyslowfast") == 0
    saved = torch.load(models / "native.pyth", weights_only=True)["model_state"]
    assert all(torch.equal(saved[k], v) for k, v in state.items())


def test_multilabel_turns_a_softmax_head_into_logits(
    models: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x3d_s_checkpoint(tmp_path / "ft.pyth")
    assert add("ml", tmp_path / "ft.pyth", labels_file(tmp_path), "--multilabel") == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["task"], printed["output"], printed["min_score"]) == ("multilabel", "logits", 0.5)
    module = ModelLoader(models).load(load_catalog(models).get("ml")).module
    assert not any(isinstance(m, torch.nn.Softmax) for m in module.modules())
    with torch.inference_mode():
        out = module(torch.randn(2, 3, 13, 182, 182))
    assert out.shape == (2, 5) and not torch.allclose(out.sum(dim=1), torch.ones(2), atol=1e-2)


def test_builtin_names_are_refused_unless_overridden(
    models: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x3d_s_checkpoint(tmp_path / "ft.pyth")
    assert add("x3d_s", tmp_path / "ft.pyth", labels_file(tmp_path)) == 1
    assert "built-in" in capsys.readouterr().err and snapshot(models) == {}
    assert main(["models", "remove", "x3d_s"]) == 2
    assert add("x3d_s", tmp_path / "ft.pyth", labels_file(tmp_path), "--override") == 0
    assert load_catalog(models).get("x3d_s").labelset == "x3d_s"
    assert main(["models", "remove", "x3d_s", "--override"]) == 0
    assert load_catalog(models).get("x3d_s").labelset == "kinetics400"


def test_a_failure_leaves_the_old_manifest_and_no_files(
    models: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x3d_s_checkpoint(tmp_path / "ft.pyth")
    assert add("first", tmp_path / "ft.pyth", labels_file(tmp_path)) == 0
    (models / "weights.lock.json").write_text("{not json")  # recording the hash will fail
    before = snapshot(models)
    assert add("second", tmp_path / "ft.pyth", labels_file(tmp_path)) == 1
    assert "weights.lock.json" in capsys.readouterr().err
    assert snapshot(models) == before and not any(p.name.startswith(".add-") for p in models.iterdir())
    assert add("first", tmp_path / "ft.pyth", labels_file(tmp_path)) == 1  # already there
    assert "already in the manifest" in capsys.readouterr().err and snapshot(models) == before


@pytest.mark.parametrize(
    ("text", "suffix", "expected"),
    [
        ('["a", "b"]', ".json", ["a", "b"]),
        ('{"1": "b", "0": "a"}', ".json", ["a", "b"]),
        ("a\n\n b \n", ".txt", ["a", "b"]),
        ('["a", "a"]', ".json", "twice"),
        ('{"0": "a", "2": "b"}', ".json", "0..1"),
        ("[]", ".json", "at least one"),
    ],
)
def test_label_files(tmp_path: Path, text: str, suffix: str, expected: list[str] | str) -> None:
    path = tmp_path / f"l{suffix}"
    path.write_text(text)
    if isinstance(expected, list):
        assert read_label_names(path) == expected
    else:
        with pytest.raises(Exception, match=expected):
            read_label_names(path)
