"""Every catalog model builds from its spec, has the zoo's parameter count and accepts its clip shape."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from app.analysis.catalog import ModelSpec, load_catalog, read_labels
from app.analysis.loader import build_model, fresh_inputs

# Params (M) from pytorchvideo's docs/source/model_zoo.md (4x16 entries from the zoo table).
ZOO_PARAMS_M = {
    "x3d_xs": 3.79, "x3d_s": 3.79, "x3d_m": 3.79, "x3d_l": 6.15, "slow_r50": 32.45, "slow_r50_4x16": 32.45,
    "c2d_r50": 24.33, "i3d_r50": 28.04, "slowfast_r50": 34.57, "slowfast_r50_4x16": 34.48,
    "slowfast_r101": 62.83, "slowfast_16x8_r101_50_50": 53.77, "csn_r101": 22.21, "r2plus1d_r50": 28.11,
    "mvit_base_16x4": 36.61, "mvit_base_32x3": 36.61, "efficient_x3d_xs": 3.79, "efficient_x3d_s": 3.79,
    # SSv2 / Charades (zoo table; slow_r50_ssv2 recomputed: the table's 31.96 is the 157-class count)
    "slow_r50_ssv2": 31.99, "slowfast_r50_ssv2": 34.04, "slow_r50_charades": 31.96, "slowfast_r50_charades": 34.00,
}  # fmt: skip
LIGHT = [
    "x3d_xs",
    "x3d_s",
    "x3d_m",
    "x3d_l",
    "efficient_x3d_xs",
    "efficient_x3d_s",
    "slow_r50",
    "slow_r50_4x16",
]
LIGHT += ["c2d_r50", "i3d_r50", "r2plus1d_r50", "slowfast_r50", "slowfast_r50_4x16"]
HEAVY = ["slowfast_r101", "slowfast_16x8_r101_50_50", "csn_r101", "mvit_base_16x4", "mvit_base_32x3"]
HEAVY += ["slow_r50_ssv2", "slowfast_r50_ssv2", "slow_r50_charades", "slowfast_r50_charades"]


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModelSpec]:
    catalog = load_catalog(tmp_path_factory.mktemp("models"))
    frame_tasks = ("classification", "multilabel")  # AVA detection: tests/unit/test_detection_units.py
    return {name: catalog.get(name) for name in catalog.names() if catalog.get(name).task in frame_tasks}


def clip_input(spec: ModelSpec, batch: int) -> torch.Tensor | list[torch.Tensor]:
    _, crop = spec.crop_geometry(1)
    crop = 224 if crop == 256 else crop  # ResNet heads pool 7x7: 224 is the smallest valid input
    torch.manual_seed(0)
    fast = torch.randn(batch, 3, spec.frames, crop, crop)
    if spec.alpha is None:
        return fast
    slow = fast.index_select(2, torch.linspace(0, spec.frames - 1, spec.frames // spec.alpha).long())
    return [slow, fast]


def test_every_model_builds_with_the_zoo_parameter_count(specs: dict[str, ModelSpec]) -> None:
    assert set(specs) == set(ZOO_PARAMS_M) == set(LIGHT + HEAVY)
    for name, spec in specs.items():
        params = sum(p.numel() for p in build_model(spec).parameters()) / 1e6
        assert params == pytest.approx(ZOO_PARAMS_M[name], abs=0.01), name
        assert spec.params_m == ZOO_PARAMS_M[name]


def check_forward(spec: ModelSpec, batch: int) -> None:
    model = fresh_inputs(build_model(spec)).eval()
    inputs = clip_input(spec, batch)
    before = [t.clone() for t in inputs] if isinstance(inputs, list) else None
    with torch.inference_mode():
        out = model(inputs)
    assert out.shape == (batch, len(read_labels(spec)))
    if spec.output == "probabilities":
        assert torch.allclose(out.sum(dim=1), torch.ones(batch), atol=1e-4)
        assert (out >= 0).all()
    else:
        assert not torch.allclose(out.sum(dim=1), torch.ones(batch), atol=1e-2)
    if isinstance(inputs, list) and before is not None:
        assert len(inputs) == 2 and all(torch.equal(a, b) for a, b in zip(inputs, before, strict=True))


@pytest.mark.parametrize("name", LIGHT)
def test_light_model_forward(specs: dict[str, ModelSpec], name: str) -> None:
    check_forward(specs[name], batch=2 if name in ("x3d_xs", "x3d_s", "efficient_x3d_xs") else 1)


@pytest.mark.slow
@pytest.mark.parametrize("name", HEAVY)
def test_heavy_model_forward(specs: dict[str, ModelSpec], name: str) -> None:
    check_forward(specs[name], batch=1)


def test_slowfast_mutates_its_input_list_unless_fixed(specs: dict[str, ModelSpec]) -> None:
    """Why the loader sets ``inplace=False``: the hub model overwrites the caller's list."""
    spec = specs["slowfast_r50"]
    model = build_model(spec).eval()
    inputs = clip_input(spec, 1)
    assert isinstance(inputs, list)
    first = inputs[0]
    with torch.inference_mode():
        model(inputs)
    assert inputs[0] is not first


def test_mvit_rejects_anything_but_its_fixed_input(specs: dict[str, ModelSpec], tmp_path: Path) -> None:
    spec = specs["mvit_base_16x4"]
    assert spec.crop_geometry(1)[1] == spec.crop_geometry(3)[1] == 224 and spec.frames == 16
    with pytest.raises(RuntimeError), torch.inference_mode():
        build_model(spec).eval()(torch.zeros(1, 3, 8, 224, 224))
