"""Weights loading through the normal path: zoo-format files written from a random init."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from app.analysis.catalog import load_catalog
from app.analysis.loader import ModelLoader, build_model
from app.analysis.lockfile import LOCK_NAME, record_sha256
from app.errors import WeightsInvalid, WeightsMissing


def save_state(
    models: Path,
    name: str,
    file_name: str,
    *,
    wrap: bool = True,
    edit: Callable[[dict[str, torch.Tensor]], object] | None = None,
) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    state = build_model(load_catalog(models).get(name)).state_dict()
    if edit is not None:
        edit(state)
    torch.save({"model_state": state, "epoch": 3, "cfg": "yaml"} if wrap else state, models / file_name)
    return state


def test_zoo_checkpoint_loads_strictly_in_eval_mode(tmp_path: Path) -> None:
    state = save_state(tmp_path, "x3d_xs", "X3D_XS.pyth")
    loaded = ModelLoader(tmp_path).load(load_catalog(tmp_path).get("x3d_xs"))
    assert not loaded.module.training
    got = loaded.module.state_dict()
    assert got.keys() == state.keys()
    assert all(torch.equal(got[k], state[k]) for k in state)
    assert loaded.sha256 == hashlib.sha256((tmp_path / "X3D_XS.pyth").read_bytes()).hexdigest()
    assert loaded.nbytes > 10_000_000


def test_missing_key_is_named(tmp_path: Path) -> None:
    save_state(tmp_path, "x3d_xs", "X3D_XS.pyth", edit=lambda s: s.pop("blocks.5.proj.weight"))
    with pytest.raises(WeightsInvalid, match=r"missing: blocks\.5\.proj\.weight") as info:
        ModelLoader(tmp_path).load(load_catalog(tmp_path).get("x3d_xs"))
    assert info.value.code == "weights_invalid"


def test_unexpected_and_mismatched_keys_are_named(tmp_path: Path) -> None:
    def edit(state: dict[str, torch.Tensor]) -> None:
        state["blocks.5.proj.weight"] = torch.zeros(10, 2048)
        state["extra.bias"] = torch.zeros(1)

    save_state(tmp_path, "x3d_xs", "X3D_XS.pyth", edit=edit)
    with pytest.raises(WeightsInvalid) as info:
        ModelLoader(tmp_path).load(load_catalog(tmp_path).get("x3d_xs"))
    assert "unexpected: extra.bias" in info.value.detail
    assert "shape mismatch: blocks.5.proj.weight (file (10, 2048), model (400, 2048))" in info.value.detail


def test_recorded_sha256_is_verified(tmp_path: Path) -> None:
    save_state(tmp_path, "x3d_xs", "X3D_XS.pyth")
    spec = load_catalog(tmp_path).get("x3d_xs")
    digest = record_sha256(tmp_path, "X3D_XS.pyth")
    assert ModelLoader(tmp_path).load(spec).sha256 == digest
    (tmp_path / LOCK_NAME).write_text(json.dumps({"X3D_XS.pyth": "0" * 64}))
    with pytest.raises(WeightsInvalid, match="sha256"):
        ModelLoader(tmp_path).load(spec)


def test_missing_file_names_file_dir_and_url(tmp_path: Path) -> None:
    with pytest.raises(WeightsMissing) as info:
        ModelLoader(tmp_path).load(load_catalog(tmp_path).get("x3d_s"))
    detail = info.value.detail
    assert "X3D_S.pyth" in detail and str(tmp_path) in detail
    assert "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/X3D_S.pyth" in detail
    assert info.value.code == "weights_missing" and not info.value.retryable


def test_efficient_x3d_bare_state_dict_loads(tmp_path: Path) -> None:
    save_state(tmp_path, "efficient_x3d_xs", "efficient_x3d_xs_original_form.pyth", wrap=False)
    loaded = ModelLoader(tmp_path).load(load_catalog(tmp_path).get("efficient_x3d_xs"))
    assert not loaded.module.training


def test_wrong_container_and_garbage_are_invalid(tmp_path: Path) -> None:
    save_state(tmp_path, "x3d_xs", "X3D_XS.pyth", wrap=False)
    with pytest.raises(WeightsInvalid, match="no 'model_state' entry"):
        ModelLoader(tmp_path).load(load_catalog(tmp_path).get("x3d_xs"))
    (tmp_path / "X3D_XS.pyth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsInvalid, match="not a loadable"):
        ModelLoader(tmp_path).load(load_catalog(tmp_path).get("x3d_xs"))


def test_pyslowfast_model_prefix_is_stripped(tmp_path: Path) -> None:
    state = save_state(tmp_path, "x3d_xs", "X3D_XS.pyth")
    torch.save({"model_state": {f"model.{k}": v for k, v in state.items()}}, tmp_path / "X3D_XS.pyth")
    loaded = ModelLoader(tmp_path).load(load_catalog(tmp_path).get("x3d_xs"))
    assert torch.equal(loaded.module.state_dict()["blocks.5.proj.weight"], state["blocks.5.proj.weight"])


def test_lru_returns_cached_instance_and_evicts_by_bytes(tmp_path: Path) -> None:
    save_state(tmp_path, "x3d_xs", "X3D_XS.pyth")
    save_state(tmp_path, "x3d_s", "X3D_S.pyth")
    catalog = load_catalog(tmp_path)
    loader = ModelLoader(tmp_path, cache_bytes=20_000_000)
    first = loader.load(catalog.get("x3d_xs"))
    assert loader.load(catalog.get("x3d_xs")) is first
    loader.load(catalog.get("x3d_s"))  # 15 MB each: the older entry is evicted
    assert loader.load(catalog.get("x3d_xs")) is not first
    big = ModelLoader(tmp_path)
    again = big.load(catalog.get("x3d_xs"))
    stat = (tmp_path / "X3D_XS.pyth").stat()
    os.utime(tmp_path / "X3D_XS.pyth", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert big.load(catalog.get("x3d_xs")) is not again  # a replaced file is reloaded
