"""Something-Something V2 and Charades in the catalog: their published figures, label sets and
test recipes, and each checkpoint format written from a random init and loaded the user's way."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from app.analysis.catalog import ModelSpec, load_catalog, read_labels
from app.analysis.loader import ModelLoader

ZOO = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/"
# name: (url tail, classes, task, view_combine, (top1, top5) or mAP) -- PyTorchVideo model zoo tables
EXPECTED = {
    "slow_r50_ssv2": ("ssv2/SLOW_8x8_R50.pyth", 174, "classification", "mean", (60.04, 85.19)),
    "slowfast_r50_ssv2": ("ssv2/SLOWFAST_8x8_R50.pyth", 174, "classification", "mean", (61.68, 86.92)),
    "slow_r50_charades": ("charades/SLOW_8x8_R50.pyth", 157, "multilabel", "max", 34.72),
    "slowfast_r50_charades": ("charades/SLOWFAST_8x8_R50.pyth", 157, "multilabel", "max", 37.24),
}


@pytest.fixture(scope="module")
def catalog_specs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModelSpec]:
    catalog = load_catalog(tmp_path_factory.mktemp("empty"))
    return {name: catalog.get(name) for name in EXPECTED}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_entry_has_the_published_figures_and_the_pyslowfast_test_recipe(
    catalog_specs: dict[str, ModelSpec], name: str
) -> None:
    spec = catalog_specs[name]
    tail, classes, task, combine, figures = EXPECTED[name]
    assert spec.url == ZOO + tail and spec.checkpoint_key == "model_state"
    assert spec.builder_kwargs == {"model_num_class": classes} and len(read_labels(spec)) == classes
    assert (spec.task, spec.view_combine, spec.output) == (task, combine, "logits")
    if task == "multilabel":
        assert spec.default_min_score == 0.5 == spec.min_score and spec.mAP == figures
        assert spec.top1 is None and spec.labelset == "charades"
    else:
        assert (spec.top1, spec.top5) == figures and spec.mAP is None and spec.min_score == 0.0
        assert spec.labelset == "ssv2"
    # configs/{SSv2,Charades}/pytorchvideo/*.yaml: REVERSE_INPUT_CHANNEL, TEST_CROP_SIZE 256
    assert spec.channel_order == "bgr"
    assert (spec.short_side, spec.crop, spec.three_crop_size) == (256, 256, 256)
    assert spec.mean == (0.45, 0.45, 0.45) and spec.std == (0.225, 0.225, 0.225)
    slowfast = name.startswith("slowfast")
    assert (spec.frames, spec.sampling_rate, spec.alpha) == ((32, 2, 4) if slowfast else (8, 8, None))


def test_label_sets_are_in_class_id_order(catalog_specs: dict[str, ModelSpec]) -> None:
    ssv2 = read_labels(catalog_specs["slow_r50_ssv2"])
    assert (
        ssv2[0] == "Approaching something with your camera"
        and ssv2[173] == "Wiping something off of something"
    )
    assert list(ssv2) == sorted(ssv2) and len(set(ssv2)) == 174
    charades = read_labels(catalog_specs["slow_r50_charades"])  # index k is class c{k:03d}
    assert charades[0] == "Holding some clothes" and charades[8] == "Opening a door"
    assert charades[156] == "Someone is eating something" and len(set(charades)) == 157
    assert read_labels(catalog_specs["slowfast_r50_charades"]) == charades


def _checkpoints(state: dict[str, torch.Tensor]) -> dict[str, object]:
    """The containers these files come in: the zoo's (``model_state``, bare pytorchvideo keys,
    as the hub files) and PySlowFast's own save of its PTV wrapper (``model.`` prefix, plus
    epoch, optimizer state and the YAML config)."""
    return {
        "zoo": {"model_state": state},
        "pyslowfast": {
            "epoch": 30,
            "model_state": {f"model.{k}": v for k, v in state.items()},
            "optimizer_state": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]},
            "cfg": "MODEL:\n  NUM_CLASSES: 157\n",
        },
    }


def _clip(spec: ModelSpec) -> torch.Tensor | list[torch.Tensor]:
    torch.manual_seed(1)
    fast = torch.randn(1, 3, spec.frames, spec.crop, spec.crop)
    if spec.alpha is None:
        return fast
    return [fast.index_select(2, torch.linspace(0, spec.frames - 1, spec.frames // spec.alpha).long()), fast]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_checkpoint_format_loads_and_gives_one_score_per_label(
    catalog_specs: dict[str, ModelSpec], name: str, tmp_path: Path
) -> None:
    spec = catalog_specs[name]
    from app.analysis.loader import build_model

    torch.manual_seed(0)
    state = build_model(spec).state_dict()
    for form, checkpoint in _checkpoints(state).items():
        models = tmp_path / form
        models.mkdir()
        torch.save(checkpoint, models / spec.weights)
        loaded = ModelLoader(models).load(load_catalog(models).get(name)).module
        assert not loaded.training
        got = loaded.state_dict()
        assert all(torch.equal(got[k], v) for k, v in state.items()), form
        (models / spec.weights).unlink()
    # logits, no activation in the network: sigmoid (multi-label) or softmax is applied after
    assert not any(isinstance(m, nn.Softmax | nn.Sigmoid) for m in loaded.modules())
    with torch.inference_mode():
        out = loaded(_clip(spec))
    assert out.shape == (1, len(read_labels(spec)))
