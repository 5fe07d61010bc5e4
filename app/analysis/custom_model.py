"""``models add``: a fine-tuned checkpoint + its labels -> a catalog model, checked before it is listed.

The new model takes its builder and clip recipe from a catalog model (``--arch``), with the
head resized to the label count. Before anything is written the checkpoint must fit that
network exactly: the head's class count is compared with the labels first (the common
mistake, named with both counts), then every key and shape (PySlowFast names converted
with ``convert.py`` when asked). The weights are re-saved in the zoo container
(``{"model_state": ...}``) and ``registry.py`` writes files, hash and manifest entry.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from app.analysis.catalog import builtin_names, load_catalog
from app.analysis.convert import NATIVE, convert, load_checkpoint, renamed_tensors, source_state
from app.analysis.loader import build_model
from app.analysis.manifest import entry_to_spec
from app.analysis.registry import add_entry, manifest_entry
from app.analysis.spec import ModelSpec
from app.errors import ManifestInvalid, WeightsInvalid

# What the head's class count is called: hub ResNet/SlowFast/X3D/CSN/R(2+1)D, MViT, EfficientX3D.
_CLASS_KWARGS = ("model_num_class", "head_num_classes", "num_classes")
_RECIPE = (
    "frames", "sampling_rate", "alpha", "short_side", "crop", "three_crop_size", "mean", "std",
    "channel_order", "view_combine",
)  # fmt: skip


@dataclass(frozen=True)
class AddRequest:
    name: str
    checkpoint: Path
    arch: str
    labels: Path
    multilabel: bool = False
    from_pyslowfast: bool = False
    override: bool = False


def read_label_names(path: Path) -> list[str]:
    """Class names in output order: a JSON array, a JSON object ``{"0": name, ...}``, or a
    text file with one name per line (blank lines skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
        data: Any = json.loads(text) if path.suffix.lower() == ".json" else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestInvalid(f"labels file {path} is not readable: {exc}") from exc
    if data is None:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    elif isinstance(data, dict) and all(str(k).isdigit() for k in data):
        if sorted(int(k) for k in data) != list(range(len(data))):
            raise ManifestInvalid(f"labels file {path}: the keys must be 0..{len(data) - 1}")
        names = [data[str(i)] for i in range(len(data))]
    else:
        names = data
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise ManifestInvalid(f"labels file {path} must list at least one non-empty class name")
    if len(set(names)) != len(names):
        raise ManifestInvalid(f"labels file {path} names a class twice")
    return names


def _entry(req: AddRequest, arch: ModelSpec, classes: int) -> dict[str, Any]:
    recipe = arch.to_dict()
    entry: dict[str, Any] = {"name": req.name, "builder": arch.builder}
    entry["builder_kwargs"] = dict(arch.builder_kwargs)
    entry.update({key: recipe[key] for key in _RECIPE if recipe[key] is not None})
    entry.update(weights=f"{req.name}.pyth", checkpoint_key="model_state", labels=f"{req.name}_labels.json")
    entry.update(
        labelset=req.name, output=arch.output, task="multilabel" if req.multilabel else "classification"
    )
    if req.multilabel and arch.output == "probabilities":  # a softmax head cannot give sigmoid scores
        entry["builder_kwargs"]["head_activation"] = None
        entry["output"] = "logits"
    kind = "multi-label" if req.multilabel else "single-label"
    entry["description"] = f"{arch.name} fine-tuned on {classes} classes ({kind}), added with `models add`."
    return entry


def _last_linear(model: nn.Module) -> tuple[str, nn.Linear] | None:
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def _build_sized(entry: dict[str, Any], classes: int, staging: Path) -> tuple[ModelSpec, nn.Module, str]:
    """The arch rebuilt with ``classes`` outputs, whichever keyword its builder uses."""
    problems = []
    for kwarg in _CLASS_KWARGS:
        raw = {**entry, "builder_kwargs": {**entry["builder_kwargs"], kwarg: classes}}
        for other in _CLASS_KWARGS:
            if other != kwarg:
                raw["builder_kwargs"].pop(other, None)
        spec = entry_to_spec(raw, base=None, builtin=False, models_dir=staging)
        try:
            model = build_model(spec)
        except ManifestInvalid as exc:
            problems.append(exc.detail)
            continue
        head = _last_linear(model)
        if head is not None and head[1].out_features == classes:
            if entry["task"] == "multilabel" and any(isinstance(m, nn.Softmax) for m in model.modules()):
                raise ManifestInvalid(f"{spec.builder} keeps a softmax head: it cannot be multi-label")
            return spec, model, f"{head[0]}.weight"
    raise ManifestInvalid(
        f"cannot give {entry['builder']} {classes} classes" + (f": {problems[-1]}" if problems else "")
    )


def _fitted_state(req: AddRequest, model: nn.Module, head_key: str, classes: int) -> dict[str, torch.Tensor]:
    try:
        source = source_state(load_checkpoint(req.checkpoint))
    except (OSError, ValueError) as exc:
        raise WeightsInvalid(f"{req.checkpoint}: {exc}") from exc
    target = model.state_dict()
    renamed, layout = renamed_tensors(source, target)
    if layout == NATIVE and not req.from_pyslowfast:
        raise WeightsInvalid(
            f"{req.checkpoint.name} has PySlowFast module names (s1.pathway0_stem...): add --from-pyslowfast"
        )
    head = renamed.get(head_key)
    if head is None:
        raise WeightsInvalid(f"{req.checkpoint.name} has no classifier head {head_key!r} ({layout} layout)")
    if head.shape[0] != classes:
        raise WeightsInvalid(
            f"{req.checkpoint.name}'s head {head_key} has {head.shape[0]} outputs but "
            f"{req.labels.name} lists {classes} labels: they must be equal"
        )
    state, report = convert(source, target)
    if not report.ok:
        raise WeightsInvalid(f"{req.checkpoint.name} does not fit {req.arch}:\n" + "\n".join(report.lines()))
    model.load_state_dict(state, strict=True)  # the last word on keys and shapes
    return state


def add_model(models_dir: Path, req: AddRequest) -> ModelSpec:
    """Check, convert and register ``req``; returns the new catalog entry."""
    catalog = load_catalog(models_dir)
    if req.name in builtin_names() and not req.override:
        raise ManifestInvalid(
            f"{req.name!r} is a built-in model; choose another name, or pass --override to replace it"
        )
    if manifest_entry(models_dir, req.name) is not None:
        raise ManifestInvalid(
            f"model {req.name!r} is already in the manifest; `models remove {req.name}` first"
        )
    arch = catalog.get(req.arch)
    names = read_label_names(req.labels)
    entry = _entry(req, arch, len(names))
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=models_dir, prefix=".add-") as tmp:
        staging = Path(tmp)
        labels = staging / entry["labels"]
        labels.write_text(json.dumps(names, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        spec, model, head_key = _build_sized(entry, len(names), staging)
        state = _fitted_state(req, model, head_key, len(names))
        torch.save({"model_state": state}, staging / spec.weights)
        entry["builder_kwargs"] = spec.builder_kwargs
        add_entry(models_dir, entry, [staging / spec.weights, labels], spec.weights)
    return load_catalog(models_dir).get(req.name)
