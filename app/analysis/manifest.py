"""One catalog entry as written in ``zoo.json`` or ``<models_dir>/manifest.json``, validated.

The pydantic model is the single definition of the entry format: the loader validates
with it and ``manifest_json_schema`` (``python -m app models schema``, committed as
``docs/manifest.schema.json``) is generated from it, so the documented schema cannot
drift from what is accepted. No torch or av here: the API imports this module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.analysis.spec import ModelSpec, read_labels
from app.errors import ManifestInvalid

MANIFEST_NAME = "manifest.json"
LABELS_DIR = Path(__file__).resolve().parent / "labels"
BUILTIN_LABELSETS = {
    "kinetics400": "kinetics400.json",
    "ssv2": "ssv2.json",
    "charades": "charades.json",
    "ava": "ava.json",
    "person": "person.json",
}
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
BUILDER_PATTERN = (
    r"^(pytorchvideo\.models|torchvision\.models\.detection|app\.demo)"
    r"(\.[A-Za-z_][A-Za-z0-9_]*)+$"
)
OTHER_BUILDERS = ("torchvision.models.detection.", "app.demo.")
"""Builders outside pytorchvideo: person detectors (``detection_types``) and the demo's own nets."""
_SHOW_PROBLEMS = 5


class ManifestEntry(BaseModel):
    """One model (unknown keys are typos: refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, title="model entry")

    name: str = Field(pattern=NAME_PATTERN, description="Catalog name; a zoo name overrides that entry.")
    builder: str = Field(
        pattern=BUILDER_PATTERN,
        description=(
            "Function that builds the network: under pytorchvideo.models. (called pretrained=False); "
            "a person_detector or detection entry may name torchvision.models.detection. or app.demo."
        ),
    )
    builder_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments for the builder (JSON lists become tuples)."
    )
    weights: str | None = Field(
        default=None, description="Checkpoint file in the models directory (default: <name>.pyth)."
    )
    url: str | None = Field(default=None, description="Where `models fetch` downloads the weights from.")
    checkpoint_key: str | None = Field(
        default="model_state", description="Key of the state dict inside the checkpoint; null: bare dict."
    )
    labels: str | None = Field(
        default=None, description="JSON array of class names in the models directory, in output order."
    )
    labelset: str = Field(default="kinetics400", description="Name of the label space, shown in results.")
    frames: int = Field(default=8, ge=1, le=512, description="T: frames per clip (SlowFast: fast pathway).")
    sampling_rate: int = Field(default=8, ge=1, le=512, description="tau: stride in frames of 30 fps video.")
    alpha: int | None = Field(default=None, ge=1, description="SlowFast only: fast/slow frame ratio.")
    short_side: int = Field(default=256, ge=8, le=4096, description="Short side after scaling, pixels.")
    crop: int = Field(default=256, ge=8, le=4096, description="Centre crop (1-crop), at most short_side.")
    three_crop_size: int | None = Field(
        default=None, ge=8, le=4096, description="Scale and crop size with crops=3 (default: as 1-crop)."
    )
    mean: list[float] = Field(
        default_factory=lambda: [0.45, 0.45, 0.45],
        min_length=3,
        max_length=3,
        description="Per-channel (R, G, B) mean of [0, 1] pixels.",
    )
    std: list[float] = Field(
        default_factory=lambda: [0.225, 0.225, 0.225],
        min_length=3,
        max_length=3,
        description="Per-channel (R, G, B) std of [0, 1] pixels, each > 0.",
    )
    output: Literal["probabilities", "logits"] = Field(
        default="logits", description="What the network returns; logits get a softmax."
    )
    channel_order: Literal["rgb", "bgr"] = Field(default="rgb", description="Channel order of the input.")
    task: Literal["classification", "multilabel", "detection", "person_detector"] = Field(
        default="classification",
        description=(
            "classification: softmax over the classes; multilabel: independent sigmoid scores; "
            "detection: sigmoid scores per person box (AVA); person_detector: finds people for it."
        ),
    )
    person_detector: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        description="detection: the catalog name of the person detector (none: jobs must give boxes).",
    )
    default_min_score: float | None = Field(
        default=None, ge=0, le=1, description="min_score of a job that sets none (multilabel: 0.5 if unset)."
    )
    view_combine: Literal["mean", "max"] = Field(
        default="mean", description="How a segment's views (clips x crops) combine: mean or max."
    )
    top1: float | None = Field(default=None, description="Published top-1 accuracy, percent.")
    top5: float | None = Field(default=None, description="Published top-5 accuracy, percent.")
    mAP: float | None = Field(default=None, description="Published mean average precision, percent.")
    params_m: float | None = Field(default=None, description="Parameters, millions.")
    gflops: float | None = Field(default=None, description="GFLOPs per view, as published.")
    description: str = Field(default="", description="Free text shown in the model list.")
    demo: bool = Field(default=False, description="A fixture model, not for real videos.")

    @field_validator("builder")
    @classmethod
    def _no_dunder(cls, value: str) -> str:
        if "__" in value:
            raise ValueError("builder must be a public function under pytorchvideo.models.")
        return value

    @field_validator("weights", "labels")
    @classmethod
    def _relative_file(cls, value: str | None) -> str | None:
        if value is not None:
            parts = Path(value).parts
            if not value or Path(value).is_absolute() or ".." in parts or "\\" in value:
                raise ValueError("must be a file name relative to the models directory")
        return value

    @field_validator("std")
    @classmethod
    def _positive_std(cls, value: list[float]) -> list[float]:
        if min(value) <= 0:
            raise ValueError("std values must be > 0")
        return value


def read_entries(path: Path) -> list[Any]:
    """The raw ``models`` list; only a file that is not such a JSON document is refused whole."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestInvalid(f"{path.name} is not readable JSON: {exc}") from exc
    models = doc.get("models") if isinstance(doc, dict) else None
    if not isinstance(models, list):
        raise ManifestInvalid(f'{path.name} must be an object {{"models": [{{...}}, ...]}}')
    return models


def entry_to_spec(raw: Any, *, base: ModelSpec | None, builtin: bool, models_dir: Path) -> ModelSpec:
    """Validate ``raw`` (merged over ``base`` when it overrides an entry) into a ModelSpec.

    Raises ManifestInvalid naming the entry and its first problems."""
    source = "zoo.json" if builtin else MANIFEST_NAME
    if not isinstance(raw, dict):
        raise ManifestInvalid(f"an entry in {source} is not a JSON object")
    if base is not None:
        merged = {
            k: v for k, v in base.to_dict().items() if k in ManifestEntry.model_fields and k != "labels"
        }
        if "labels" in raw or "labelset" in raw:
            merged.pop("labelset", None)
        merged.update(raw)
        raw = merged
    try:
        entry = ManifestEntry.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'entry'}: {e['msg']}" for e in exc.errors()[:_SHOW_PROBLEMS]
        )
        raise ManifestInvalid(f"model {raw.get('name', '?')!r} in {source}: {problems}") from exc
    if entry.crop > entry.short_side:
        raise ManifestInvalid(
            f"model {entry.name!r}: crop {entry.crop} exceeds short_side {entry.short_side}"
        )
    if entry.builder.startswith(OTHER_BUILDERS) and entry.task not in ("detection", "person_detector"):
        raise ManifestInvalid(
            f"model {entry.name!r}: builder {entry.builder!r} is for detection entries only"
        )
    if entry.person_detector is not None and entry.task != "detection":
        raise ManifestInvalid(f"model {entry.name!r}: person_detector belongs to detection entries")
    if entry.alpha is not None and entry.frames // entry.alpha < 1:
        raise ManifestInvalid(f"model {entry.name!r}: alpha {entry.alpha} leaves no slow-pathway frame")
    labels_path, labels = _resolve_labels(entry, builtin=builtin and base is None, models_dir=models_dir)
    spec = ModelSpec(
        **entry.model_dump(exclude={"labels", "weights", "mean", "std"}),
        mean=(entry.mean[0], entry.mean[1], entry.mean[2]),
        std=(entry.std[0], entry.std[1], entry.std[2]),
        weights=entry.weights or f"{entry.name}.pyth",
        labels=labels,
        labels_path=labels_path,
        source="builtin" if builtin else "manifest",
    )
    if not builtin:
        read_labels(spec)  # a malformed labels file is this entry's problem, found now
    return spec


def _resolve_labels(entry: ManifestEntry, *, builtin: bool, models_dir: Path) -> tuple[Path, str]:
    if entry.labels is None or (builtin and entry.labels == BUILTIN_LABELSETS.get(entry.labelset)):
        file = entry.labels or BUILTIN_LABELSETS.get(entry.labelset)
        if file is None:
            raise ManifestInvalid(f"model {entry.name!r}: labelset {entry.labelset!r} needs a 'labels' file")
        return LABELS_DIR / file, file
    path = models_dir / entry.labels
    if not path.is_file():
        raise ManifestInvalid(f"model {entry.name!r}: labels file {entry.labels!r} not found in {models_dir}")
    return path, entry.labels


def manifest_json_schema(builtin_names: list[str]) -> dict[str, Any]:
    """JSON Schema (2020-12) of ``manifest.json``: an entry that does not override one of
    ``builtin_names`` must name its builder."""
    entry = ManifestEntry.model_json_schema()
    entry["required"] = ["name"]
    entry["if"] = {"properties": {"name": {"enum": builtin_names}}}
    entry["else"] = {"required": ["builder"]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "models/manifest.json",
        "description": "Models added to (or overriding fields of) the built-in catalog. See docs/MODELS.md.",
        "type": "object",
        "required": ["models"],
        "properties": {
            "$schema": {"type": "string"},
            "_comment": {"type": "string"},
            "models": {"type": "array", "items": {"$ref": "#/$defs/entry"}},
        },
        "$defs": {"entry": entry},
    }
