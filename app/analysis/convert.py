"""PySlowFast checkpoints -> the zoo's pytorchvideo format (``{"model_state": ...}``).

These source layouts are understood (the map is tabled in docs/MODELS.md, "Checkpoint files"):

* PySlowFast's PTV wrappers save pytorchvideo keys under a ``model.`` prefix
  (DataParallel adds ``module.``): the prefix goes, nothing else changes;
* PySlowFast's native ResNet/SlowFast/X3D modules (``s1.pathway0_stem.conv``,
  ``s2.pathway0_res0.branch2.a_bn``, ``s1_fuse.conv_f2s``, ``head.projection`` ...) are
  renamed with that map. Which pytorchvideo block a native stage lands in
  is read off the target model (C2D/I3D have an extra pooling block after stage 2);
* PySlowFast's native MViT (``patch_embed.proj``, ``cls_token``, ``pos_embed_*``,
  ``norm``, ``head.projection``; the map's MViT row) with its fused
  ``attn.qkv`` split into pytorchvideo's ``attn.q/k/v``: PySlowFast reshapes the qkv
  output to ``(B, N, 3, heads, head_dim)``, so the rows are q, then k, then v. Both
  project before pooling (PySlowFast ``POOL_FIRST: False``, pytorchvideo
  ``pool_first=False``). MViTv2-only parameters (``rel_pos_*``, a joint ``pos_embed``,
  ``norm_stem``) have no place in pytorchvideo's MViT and are reported unmapped.

Every source key the map does not know, every renamed key the model lacks, every
shape that differs and every model key left unfilled is reported; the file is only
written when nothing is left over. The map is derived from module names, not yet
checked against real PySlowFast weights.
"""

from __future__ import annotations

import pickle
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

_STEM = re.compile(r"s1\.pathway(\d+)_stem\.(conv_xy|conv|bn)\.(.+)")
_FUSE = re.compile(r"s(\d)_fuse\.(conv_f2s|bn)\.(.+)")
_RES = re.compile(r"s(\d)\.pathway(\d+)_res(\d+)\.(.+)")
_HEAD = re.compile(r"head\.(projection|conv_5_bn|conv_5|lin_5)\.(.+)")
_HEAD_NAMES = {
    "projection": "proj",
    "conv_5": "pool.pre_conv",
    "conv_5_bn": "pool.pre_norm",
    "lin_5": "pool.post_conv",
}
_BRANCH = [
    (re.compile(r"branch1\.(weight|bias)$"), r"branch1_conv.\1"),
    (re.compile(r"branch1_bn\.(.+)$"), r"branch1_norm.\1"),
    (re.compile(r"branch2\.([abc])_bn\.(.+)$"), r"branch2.norm_\1.\2"),
    (re.compile(r"branch2\.([abc])\.(.+)$"), r"branch2.conv_\1.\2"),
    (re.compile(r"branch2\.se\.fc1\.(.+)$"), r"branch2.norm_b.1.block.0.\1"),
    (re.compile(r"branch2\.se\.fc2\.(.+)$"), r"branch2.norm_b.1.block.2.\1"),
]
_MVIT_TOP = {
    "patch_embed.proj": "patch_embed.patch_model",
    "norm": "norm_embed",
    "head.projection": "head.proj",
}
_MVIT_TOKENS = re.compile(r"(cls_token|pos_embed_spatial|pos_embed_temporal|pos_embed_class)")
_MVIT_TOP_KEY = re.compile(r"(patch_embed\.proj|norm|head\.projection)\.(weight|bias)")
# Names a PySlowFast MultiScaleBlock shares with pytorchvideo's.
_MVIT_BLOCK = re.compile(
    r"blocks\.\d+\.(?:norm1|norm2|proj|mlp\.fc[12]"
    r"|attn\.(?:q|k|v|proj|pool_q|pool_k|pool_v|norm_q|norm_k|norm_v))\.(?:weight|bias)"
)
_MVIT_QKV = re.compile(r"(blocks\.\d+\.attn\.)qkv\.(weight|bias)")


@dataclass(frozen=True)
class Layout:
    """What the target pytorchvideo model looks like, as far as renaming needs."""

    multipath: bool
    stage_blocks: dict[int, int]
    head_block: int
    x3d_stem: bool
    mvit: bool
    keys: frozenset[str]

    @classmethod
    def of(cls, target: Mapping[str, torch.Tensor]) -> Layout:
        res = sorted(
            {int(m.group(1)) for k in target if (m := re.match(r"blocks\.(\d+)\..*res_blocks\.", k))}
        )
        heads = [int(m.group(1)) for k in target if (m := re.fullmatch(r"blocks\.(\d+)\.proj\.weight", k))]
        return cls(
            multipath=any(".multipathway_blocks." in k for k in target),
            stage_blocks=dict(zip(range(2, 2 + len(res)), res, strict=True)),
            head_block=heads[0] if heads else -1,
            x3d_stem=any(k.startswith("blocks.0.conv.conv_xy") for k in target),
            mvit=any(k.startswith("cls_positional_encoding.") for k in target),
            keys=frozenset(target),
        )


def mvit_native_to_ptv(key: str) -> str | None:
    """The pytorchvideo name of a native PySlowFast MViT key (``attn.qkv`` aside: it
    becomes three tensors, see ``_renamed``), or None when no rule applies."""
    if _MVIT_TOKENS.fullmatch(key):
        return f"cls_positional_encoding.{key}"
    if m := _MVIT_TOP_KEY.fullmatch(key):
        return f"{_MVIT_TOP[m.group(1)]}.{m.group(2)}"
    return key if _MVIT_BLOCK.fullmatch(key) else None


def native_to_ptv(key: str, layout: Layout) -> str | None:
    """The pytorchvideo name of a native PySlowFast key, or None when no rule applies."""
    if layout.mvit:
        return mvit_native_to_ptv(key)
    if m := _STEM.fullmatch(key):
        path, part, rest = m.groups()
        base = f"blocks.0.multipathway_blocks.{path}." if layout.multipath else "blocks.0."
        if part == "bn":
            return f"{base}norm.{rest}"
        if layout.x3d_stem:
            return f"{base}conv.{'conv_xy' if part == 'conv_xy' else 'conv_t'}.{rest}"
        return f"{base}conv.{rest}" if part == "conv" else None
    if m := _FUSE.fullmatch(key):
        stage, part, rest = m.groups()
        name = "conv_fast_to_slow" if part == "conv_f2s" else "norm"
        return f"blocks.{int(stage) - 1}.multipathway_fusion.{name}.{rest}"
    if m := _RES.fullmatch(key):
        stage, path, index, tail = m.groups()
        block = layout.stage_blocks.get(int(stage))
        if block is None:
            return None
        base = f"blocks.{block}." + (f"multipathway_blocks.{path}." if layout.multipath else "")
        base += f"res_blocks.{index}."
        for pattern, replacement in _BRANCH:
            if pattern.match(tail):
                name = base + pattern.sub(replacement, tail)
                # X3D blocks with squeeze-excitation hold their BN at norm_b.0.
                if name not in layout.keys and ".norm_b." in name:
                    with_se = name.replace(".norm_b.", ".norm_b.0.", 1)
                    if with_se in layout.keys:
                        return with_se
                return name
        return None
    if (m := _HEAD.fullmatch(key)) and layout.head_block >= 0:
        part, rest = m.groups()
        return f"blocks.{layout.head_block}.{_HEAD_NAMES[part]}.{rest}"
    return None


@dataclass
class ImportReport:
    source_layout: str
    mapped: int = 0
    unmapped: list[str] = field(default_factory=list)
    """Source keys no rule renames."""
    unexpected: list[str] = field(default_factory=list)
    """``source -> name`` pairs whose name the model does not have."""
    mismatched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """Model keys the checkpoint did not provide."""
    filled: list[str] = field(default_factory=list)
    """BatchNorm ``num_batches_tracked`` counters absent from the source, set to 0."""

    @property
    def ok(self) -> bool:
        return not (self.unmapped or self.unexpected or self.mismatched or self.missing)

    def lines(self) -> list[str]:
        out = [f"source layout: {self.source_layout}; {self.mapped} tensors mapped"]
        for title, keys in (
            ("unmapped source keys", self.unmapped),
            ("renamed keys the model lacks", self.unexpected),
            ("shape mismatches", self.mismatched),
            ("model keys not provided", self.missing),
        ):
            if keys:  # every key, however many: the user fixes the checkpoint from this list
                out.append(f"{title} ({len(keys)}):")
                out += [f"  {k}" for k in keys]
        if self.filled:
            out.append(f"num_batches_tracked counters set to 0: {len(self.filled)}")
        return out

    def to_dict(self) -> dict[str, Any]:
        """The whole report, every list complete (``models import --json``)."""
        return {
            "source_layout": self.source_layout,
            "ok": self.ok,
            "mapped": self.mapped,
            "unmapped": list(self.unmapped),
            "unexpected": list(self.unexpected),
            "mismatched": list(self.mismatched),
            "missing": list(self.missing),
            "filled": list(self.filled),
        }


def source_state(checkpoint: Any) -> dict[str, torch.Tensor]:
    """The tensors of a PySlowFast ``.pyth`` (``model_state``) or a bare state dict."""
    state = checkpoint
    if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get("model_state"), Mapping):
        state = checkpoint["model_state"]
    if not isinstance(state, Mapping):
        raise ValueError(f"not a checkpoint: found {type(checkpoint).__name__}")
    tensors = {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ValueError("the checkpoint holds no tensors")
    return tensors


def _strip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return state


def _is_native(state: Mapping[str, torch.Tensor], layout: Layout) -> bool:
    """Native PySlowFast names: for MViT, none of pytorchvideo's own top-level names
    (the block names are shared); otherwise, no ``blocks.`` at all."""
    if layout.mvit:
        ptv_only = ("patch_embed.patch_model.", "cls_positional_encoding.", "norm_embed.", "head.proj.")
        return not any(k.startswith(ptv_only) for k in state)
    return not any(k.startswith("blocks.") for k in state)


def _renamed(
    state: Mapping[str, torch.Tensor], layout: Layout, native: bool
) -> Iterator[tuple[str, str | None, torch.Tensor]]:
    """(source key as reported, pytorchvideo name or None, tensor) for every source
    tensor; a native MViT ``attn.qkv`` yields its q, k and v thirds."""
    for key, tensor in state.items():
        if not native:
            yield key, key, tensor
        elif layout.mvit and (m := _MVIT_QKV.fullmatch(key)):
            if tensor.shape[0] % 3:
                yield key, None, tensor  # cannot be q, k and v of equal width
                continue
            for part, third in zip("qkv", tensor.chunk(3, dim=0), strict=True):
                # A copy, not a view: saved alone, not with the whole qkv storage.
                yield f"{key}[{part}]", f"{m.group(1)}{part}.{m.group(2)}", third.clone()
        else:
            yield key, native_to_ptv(key, layout), tensor


NATIVE = "pyslowfast native"


def _prepare(
    source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], Layout, bool, str]:
    """Wrapper prefixes gone, the target's layout, whether the names are PySlowFast-native,
    and the source layout as reported."""
    state = _strip(dict(source), "module.")
    ptv_wrapped = bool(state) and all(k.startswith("model.") for k in state)
    state = _strip(state, "model.")
    layout = Layout.of(target)
    native = not ptv_wrapped and _is_native(state, layout)
    name = NATIVE if native else ("ptv wrapper (model.)" if ptv_wrapped else "pytorchvideo")
    return state, layout, native, name


def renamed_tensors(
    source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], str]:
    """Every source tensor a rule names, under its pytorchvideo name, shapes unchecked (to
    read e.g. the head's class count before a full ``convert``), and the source layout."""
    state, layout, native, name = _prepare(source, target)
    return {new: tensor for _, new, tensor in _renamed(state, layout, native) if new}, name


def convert(
    source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], ImportReport]:
    """Rename ``source`` for a model whose ``state_dict()`` is ``target``."""
    state, layout, native, layout_name = _prepare(source, target)
    report = ImportReport(layout_name)
    out: dict[str, torch.Tensor] = {}
    for key, name, tensor in _renamed(state, layout, native):
        if name is None:
            report.unmapped.append(key)
        elif name not in target:
            report.unexpected.append(key if name == key else f"{key} -> {name}")
        elif tensor.shape != target[name].shape:
            shown = key if name == key else f"{key} -> {name}"
            report.mismatched.append(
                f"{shown}: file {tuple(tensor.shape)}, model {tuple(target[name].shape)}"
            )
        else:
            out[name] = tensor
    for name, value in target.items():
        if name in out:
            continue
        if name.endswith("num_batches_tracked"):
            out[name] = torch.zeros_like(value)
            report.filled.append(name)
        else:
            report.missing.append(name)
    report.mapped = len(out) - len(report.filled)
    return out, report


CONFIG_CLASSES = ("yacs.config.CfgNode", "fvcore.common.config.CfgNode")
"""PySlowFast saves its config as ``cfg.dump()`` (a YAML string); older and forked trainers
pickle the CfgNode itself. ``load_checkpoint`` reads those as plain OrderedDicts."""


def load_checkpoint(path: Path) -> Any:
    """``torch.load(weights_only=True)``: tensors, containers and numbers only, so a checkpoint
    cannot run code. A pickled yacs/fvcore ``CfgNode`` (a dict subclass) is built as an
    OrderedDict instead: no yacs/fvcore code runs, and only ``model_state`` is used anyway."""
    stand_ins: list[Callable[..., Any] | tuple[Callable[..., Any], str]] = [
        (OrderedDict, name) for name in CONFIG_CLASSES
    ]
    try:
        with torch.serialization.safe_globals(stand_ins):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" not in str(exc):  # not a refused class or function: not a checkpoint
            raise ValueError(f"{path.name} is not a readable torch checkpoint (UnpicklingError)") from exc
        raise ValueError(
            f"{path.name} pickles objects other than tensors, containers, numbers and a yacs config, "
            "so it is not loaded; if you trust its origin, re-save just its tensors "
            "(torch.save({'model_state': ...}, 'clean.pyth')) and import that"
        ) from exc
    except Exception as exc:  # arbitrary bytes make the unpickler fail in arbitrary ways
        raise ValueError(
            f"{path.name} is not a readable torch checkpoint ({type(exc).__name__}: {exc})"
        ) from exc


def import_checkpoint(checkpoint: Path, target_model: torch.nn.Module, out: Path) -> ImportReport:
    """Convert ``checkpoint`` for ``target_model``; writes ``out`` only when the report is clean."""
    state, report = convert(source_state(load_checkpoint(checkpoint)), target_model.state_dict())
    if report.ok:
        target_model.load_state_dict(state, strict=True)  # the last word on keys and shapes
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.part")
        torch.save({"model_state": state}, tmp)
        tmp.replace(out)
    return report
