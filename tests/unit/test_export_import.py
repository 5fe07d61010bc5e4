"""`models import`: PySlowFast checkpoints (native names, or PTV wrappers with `model.`)
become zoo-format files; everything that does not fit is reported, nothing half-written."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch

from app.__main__ import main
from app.analysis.convert import convert, native_to_ptv

# The inverse of the PySlowFast -> pytorchvideo key map (docs/MODELS.md, "Checkpoint files"),
# written independently of app.analysis.convert.
_TAIL = [
    (r"branch1_conv\.(.+)", r"branch1.\1"),
    (r"branch1_norm\.(.+)", r"branch1_bn.\1"),
    (r"branch2\.conv_([abc])\.(.+)", r"branch2.\1.\2"),
    (r"branch2\.norm_b\.0\.(.+)", r"branch2.b_bn.\1"),
    (r"branch2\.norm_b\.1\.block\.0\.(.+)", r"branch2.se.fc1.\1"),
    (r"branch2\.norm_b\.1\.block\.2\.(.+)", r"branch2.se.fc2.\1"),
    (r"branch2\.norm_([abc])\.(.+)", r"branch2.\1_bn.\2"),
]


def to_native(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    res_blocks = sorted(
        {int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\..*res_blocks", k))}
    )
    stage_of = {block: stage for stage, block in enumerate(res_blocks, start=2)}
    out = {}
    for key, value in state.items():
        if m := re.fullmatch(
            r"blocks\.0\.(?:multipathway_blocks\.(\d)\.)?(conv\.conv_xy|conv\.conv_t|conv|norm)\.(.+)", key
        ):
            path, part, rest = m.group(1) or "0", m.group(2), m.group(3)
            native = {"conv.conv_xy": "conv_xy", "conv.conv_t": "conv", "conv": "conv", "norm": "bn"}[part]
            name = f"s1.pathway{path}_stem.{native}.{rest}"
        elif m := re.fullmatch(r"blocks\.(\d)\.multipathway_fusion\.(conv_fast_to_slow|norm)\.(.+)", key):
            part = "conv_f2s" if m.group(2) == "conv_fast_to_slow" else "bn"
            name = f"s{int(m.group(1)) + 1}_fuse.{part}.{m.group(3)}"
        elif m := re.fullmatch(r"blocks\.(\d)\.(?:multipathway_blocks\.(\d)\.)?res_blocks\.(\d+)\.(.+)", key):
            tail = m.group(4)
            for pattern, replacement in _TAIL:
                if re.fullmatch(pattern, tail):
                    tail = re.sub(pattern, replacement, tail)
                    break
            name = f"s{stage_of[int(m.group(1))]}.pathway{m.group(2) or 0}_res{m.group(3)}.{tail}"
        elif m := re.fullmatch(
            r"blocks\.\d\.(proj|pool\.pre_conv|pool\.pre_norm|pool\.post_conv)\.(.+)", key
        ):
            part = {"proj": "projection", "pool.pre_conv": "conv_5", "pool.pre_norm": "conv_5_bn"}.get(
                m.group(1), "lin_5"
            )
            name = f"head.{part}.{m.group(2)}"
        else:
            raise AssertionError(f"test inverse map misses {key}")
        out[name] = value
    return out


def hub_state(builder: str, seed: int = 0) -> dict[str, torch.Tensor]:
    from pytorchvideo.models import hub

    torch.manual_seed(seed)
    return dict(getattr(hub, builder)(pretrained=False).state_dict())


@pytest.mark.parametrize("builder", ["x3d_xs", "c2d_r50", "slowfast_r50"])
def test_native_checkpoints_round_trip(builder: str) -> None:
    original = hub_state(builder)
    native = to_native(original)
    assert not any(k.startswith("blocks.") for k in native)
    converted, report = convert(native, hub_state(builder, seed=1))
    assert report.ok, report.lines()
    assert report.source_layout == "pyslowfast native" and report.mapped == len(original)
    assert converted.keys() == original.keys()
    assert all(torch.equal(converted[k], original[k]) for k in original)


def test_ptv_wrapper_prefix_and_problems_are_reported() -> None:
    target = hub_state("x3d_xs")
    wrapped = {f"model.{k}": v for k, v in target.items()}
    converted, report = convert(wrapped, target)
    assert report.ok and report.source_layout == "ptv wrapper (model.)" and converted.keys() == target.keys()

    native = to_native(target)
    native["s9.pathway0_res0.branch2.a.weight"] = torch.zeros(1)  # a stage the model lacks
    native["head.unknown_layer.weight"] = torch.zeros(1)
    native["head.projection.weight"] = torch.zeros(10, 432)  # wrong number of classes
    del native["s2.pathway0_res0.branch2.a.weight"]
    native = {k: v for k, v in native.items() if not k.endswith("num_batches_tracked")}
    _, report = convert(native, target)
    assert not report.ok
    assert set(report.unmapped) == {"s9.pathway0_res0.branch2.a.weight", "head.unknown_layer.weight"}
    assert report.mismatched == [
        "head.projection.weight -> blocks.5.proj.weight: file (10, 432), model (400, 2048)"
    ]
    assert report.missing == ["blocks.1.res_blocks.0.branch2.conv_a.weight", "blocks.5.proj.weight"]
    assert len(report.filled) > 0, "absent BatchNorm counters are filled, not reported"
    text = "\n".join(report.lines())
    assert "unmapped source keys (2)" in text and "shape mismatches (1)" in text


def test_stage_blocks_follow_the_target_model() -> None:
    from app.analysis.convert import Layout

    c2d = Layout.of(hub_state("c2d_r50"))
    assert c2d.stage_blocks == {2: 1, 3: 3, 4: 4, 5: 5} and c2d.head_block == 6
    key = "s3.pathway0_res1.branch2.b_bn.running_var"
    assert native_to_ptv(key, c2d) == "blocks.3.res_blocks.1.branch2.norm_b.running_var"


def test_cli_import_writes_a_loadable_zoo_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("VAS_MODELS_DIR", str(models))
    original = hub_state("x3d_xs", seed=3)
    source = tmp_path / "X3D_XS_pyslowfast.pyth"
    torch.save({"epoch": 300, "model_state": to_native(original), "optimizer_state": {}}, source)

    assert main(["models", "import", str(source), "--arch", "x3d_xs"]) == 0
    out = capsys.readouterr().out
    assert "pyslowfast native" in out and "X3D_XS.pyth" in out
    saved = torch.load(models / "X3D_XS.pyth", weights_only=True)["model_state"]
    assert all(torch.equal(saved[k], original[k]) for k in original)
    assert main(["models", "import", str(source), "--arch", "x3d_xs"]) == 2, "no silent overwrite"

    from app.analysis.catalog import load_catalog
    from app.analysis.loader import ModelLoader

    loaded = ModelLoader(models).load(load_catalog(models).get("x3d_xs"))
    assert loaded.module is not None

    bad = tmp_path / "slowfast.pyth"
    torch.save({"model_state": to_native(hub_state("slowfast_r50"))}, bad)
    assert main(["models", "import", str(bad), "--arch", "x3d_xs", "--out", str(tmp_path / "x.pyth")]) == 1
    assert "does not fit x3d_xs" in capsys.readouterr().err and not (tmp_path / "x.pyth").exists()
    assert os.environ["VAS_MODELS_DIR"] == str(models)


def test_the_report_lists_every_key_and_cli_json_has_them_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = hub_state("x3d_xs")
    native = to_native(target)
    extra = {f"head.unknown_{i}.weight": torch.zeros(1) for i in range(45)}
    _, report = convert({**native, **extra}, target)
    text = "\n".join(report.lines())
    assert "unmapped source keys (45)" in text and "more" not in text
    assert all(f"  {key}" in report.lines() for key in extra), "no key is cut from the listing"

    monkeypatch.setenv("VAS_MODELS_DIR", str(tmp_path))
    bad = tmp_path / "bad.pyth"
    torch.save({"model_state": {**native, **extra}}, bad)
    out = tmp_path / "x.pyth"
    assert main(["models", "import", str(bad), "--arch", "x3d_xs", "--out", str(out), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["out"] is None and sorted(doc["unmapped"]) == sorted(extra)
    assert doc["source_layout"] == "pyslowfast native" and doc["mapped"] == report.mapped

    good = tmp_path / "good.pyth"
    torch.save({"model_state": native}, good)
    assert main(["models", "import", str(good), "--arch", "x3d_xs", "--out", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] and doc["out"] == str(out) and len(doc["sha256"]) == 64 and doc["unmapped"] == []


# The inverse of that map's MViT row, written independently of app.analysis.convert:
# PySlowFast fuses q, k and v into one ``attn.qkv`` whose output rows are q, then k, then v.
_MVIT_TOP = {
    "patch_embed.patch_model": "patch_embed.proj",
    "norm_embed": "norm",
    "head.proj": "head.projection",
}


def mvit_to_native(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        module, _, param = key.rpartition(".")
        if m := re.fullmatch(r"(blocks\.\d+\.attn)\.([qkv])", module):
            qkv.setdefault((m.group(1), param), {})[m.group(2)] = value
        elif module == "cls_positional_encoding":
            out[param] = value
        elif module in _MVIT_TOP:
            out[f"{_MVIT_TOP[module]}.{param}"] = value
        elif key.startswith("blocks."):
            out[key] = value
        else:
            raise AssertionError(f"test inverse map misses {key}")
    for (attn, param), parts in qkv.items():
        out[f"{attn}.qkv.{param}"] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return out


def test_native_mvit_checkpoints_import_with_qkv_split(tmp_path: Path) -> None:
    from pytorchvideo.models import hub

    from app.analysis.convert import import_checkpoint

    torch.manual_seed(0)
    original = hub.mvit_base_16x4(pretrained=False).eval()
    torch.manual_seed(1)
    imported = hub.mvit_base_16x4(pretrained=False).eval()
    state = dict(original.state_dict())
    native = mvit_to_native(state)
    assert "patch_embed.proj.weight" in native and "blocks.0.attn.qkv.weight" in native
    assert not any(k.startswith("cls_positional_encoding.") or ".attn.q." in k for k in native)

    source = tmp_path / "MVIT_B_16x4_pyslowfast.pyth"
    torch.save({"epoch": 200, "model_state": native}, source)
    out = tmp_path / "MVIT_B_16x4.pyth"
    report = import_checkpoint(source, imported, out)
    assert report.ok, report.lines()
    assert report.source_layout == "pyslowfast native" and report.mapped == len(state)
    saved = torch.load(out, weights_only=True)["model_state"]
    assert saved.keys() == state.keys() and all(torch.equal(saved[k], state[k]) for k in state)

    # PySlowFast's own qkv arithmetic (reshape to (B, N, 3, heads, head_dim)) on the native
    # tensors gives what pytorchvideo's separate q/k/v compute with the imported weights.
    attn = imported.blocks[1].attn
    assert attn.num_heads > 1
    x = torch.randn(2, 9, attn.q.in_features)
    fused = torch.nn.functional.linear(
        x, native["blocks.1.attn.qkv.weight"], native["blocks.1.attn.qkv.bias"]
    )
    q, k, v = fused.reshape(2, 9, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
    with torch.no_grad():
        ptv = attn._qkv_proj(x, 9, x, 9, x, 9, 2, x.shape[-1])
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip((q, k, v), ptv, strict=True))

    clip = torch.randn(1, 3, 16, 224, 224)
    with torch.no_grad():
        assert torch.allclose(imported(clip), original(clip), atol=1e-5)


def test_native_mvit_v2_extras_are_reported_not_dropped() -> None:
    from app.analysis.convert import Layout

    target = {
        "cls_positional_encoding.cls_token": torch.zeros(1, 1, 8),
        "blocks.0.attn.q.weight": torch.zeros(8, 8),
        "blocks.0.attn.k.weight": torch.zeros(8, 8),
        "blocks.0.attn.v.weight": torch.zeros(8, 8),
    }
    layout = Layout.of(target)
    assert layout.mvit
    assert native_to_ptv("blocks.3.attn.rel_pos_h", layout) is None
    assert native_to_ptv("pos_embed", layout) is None and native_to_ptv("norm_stem.weight", layout) is None
    _, report = convert(
        {
            "cls_token": torch.zeros(1, 1, 8),
            "blocks.0.attn.qkv.weight": torch.zeros(24, 8),
            "blocks.0.attn.rel_pos_h": torch.zeros(3, 8),
            "blocks.1.attn.qkv.weight": torch.zeros(25, 8),
        },
        target,
    )
    assert report.source_layout == "pyslowfast native" and report.mapped == 4
    assert report.unmapped == ["blocks.0.attn.rel_pos_h", "blocks.1.attn.qkv.weight"]
