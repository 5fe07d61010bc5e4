"""What models exist: their clip specs as data (zoo.json + ``<models_dir>/manifest.json``).

No torch or av here: the API imports this module to validate job submissions and to
list models. Every entry names a builder (a dotted path under ``pytorchvideo.models.``),
the zoo checkpoint file, and the exact preprocessing the zoo test protocol used.

Crop sizes: ``short_side``/``crop`` are the 1-crop protocol (PySlowFast 1-crop test: short
side ``TRAIN_JITTER_SCALES[0]``, crop ``TEST_CROP_SIZE``); for X3D-XS/S that is 182 -> 160,
the value PySlowFast's configs give "if TEST.NUM_SPATIAL_CROPS: 1". With 3 crops the
zoo protocol scales the short side to ``three_crop_size`` and takes three crops of that
size (X3D-XS/S: 182, MViT: 224 because its input is fixed).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.analysis.lockfile import read_lock
from app.analysis.spec import ModelSpec, clip_seconds, default_segment_seconds, read_labels
from app.errors import ManifestInvalid, UnknownModel

__all__ = ["Catalog", "ModelSpec", "clip_seconds", "default_segment_seconds", "load_catalog", "read_labels"]

MANIFEST_NAME = "manifest.json"
_PACKAGE_DIR = Path(__file__).resolve().parent
_ZOO_FILE = _PACKAGE_DIR / "zoo.json"
_LABELS_DIR = _PACKAGE_DIR / "labels"
BUILTIN_LABELSETS = {"kinetics400": "kinetics400.json", "ssv2": "ssv2.json"}


class _Entry(BaseModel):
    """Validation of one zoo.json / manifest.json entry (unknown keys are typos: refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    builder: str = Field(pattern=r"^pytorchvideo\.models\.[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
    builder_kwargs: dict[str, Any] = Field(default_factory=dict)
    weights: str | None = None
    url: str | None = None
    checkpoint_key: str | None = "model_state"
    labels: str | None = None
    labelset: str = "kinetics400"
    frames: int = Field(default=8, ge=1, le=512)
    sampling_rate: int = Field(default=8, ge=1, le=512)
    alpha: int | None = Field(default=None, ge=1)
    short_side: int = Field(default=256, ge=8, le=4096)
    crop: int = Field(default=256, ge=8, le=4096)
    three_crop_size: int | None = Field(default=None, ge=8, le=4096)
    mean: tuple[float, float, float] = (0.45, 0.45, 0.45)
    std: tuple[float, float, float] = (0.225, 0.225, 0.225)
    output: Literal["probabilities", "logits"] = "logits"
    channel_order: Literal["rgb", "bgr"] = "rgb"
    top1: float | None = None
    top5: float | None = None
    params_m: float | None = None
    gflops: float | None = None
    description: str = ""
    demo: bool = False

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
    def _positive_std(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if min(value) <= 0:
            raise ValueError("std values must be > 0")
        return value


def _to_spec(raw: dict[str, Any], *, base: ModelSpec | None, source: str, models_dir: Path) -> ModelSpec:
    """Validate ``raw`` (merged over ``base`` for a manifest override) into a ModelSpec."""
    if base is not None:
        known = set(_Entry.model_fields)
        merged = {k: v for k, v in base.to_dict().items() if k in known and k != "labels"}
        if "labels" in raw or "labelset" in raw:
            merged.pop("labelset", None)
        merged.update(raw)
        raw = merged
    try:
        entry = _Entry.model_validate(raw)
    except ValidationError as exc:
        where = raw.get("name", "?") if isinstance(raw, dict) else "?"
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise ManifestInvalid(f"model entry {where!r} in {source}: {problems}") from exc
    if entry.crop > entry.short_side:
        raise ManifestInvalid(
            f"model {entry.name!r}: crop {entry.crop} exceeds short_side {entry.short_side}"
        )
    if entry.alpha is not None and entry.frames // entry.alpha < 1:
        raise ManifestInvalid(f"model {entry.name!r}: alpha {entry.alpha} leaves no slow-pathway frame")
    labels_path, labels = _resolve_labels(
        entry, builtin=base is None and source == "zoo.json", models_dir=models_dir
    )
    fields = entry.model_dump(exclude={"labels", "weights"})
    return ModelSpec(
        **fields,
        weights=entry.weights or f"{entry.name}.pyth",
        labels=labels,
        labels_path=labels_path,
        source="builtin" if source == "zoo.json" else "manifest",
    )


def _resolve_labels(entry: _Entry, *, builtin: bool, models_dir: Path) -> tuple[Path, str]:
    if entry.labels is None or (builtin and entry.labels == BUILTIN_LABELSETS.get(entry.labelset)):
        file = entry.labels or BUILTIN_LABELSETS.get(entry.labelset)
        if file is None:
            raise ManifestInvalid(f"model {entry.name!r}: labelset {entry.labelset!r} needs a 'labels' file")
        return _LABELS_DIR / file, file
    path = models_dir / entry.labels
    if not path.is_file():
        raise ManifestInvalid(f"model {entry.name!r}: labels file {entry.labels!r} not found in {models_dir}")
    return path, entry.labels


def _read_entries(path: Path) -> list[dict[str, Any]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestInvalid(f"{path.name} is not readable JSON: {exc}") from exc
    models = doc.get("models") if isinstance(doc, dict) else None
    if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
        raise ManifestInvalid(f'{path.name} must be an object {{"models": [{{...}}, ...]}}')
    return models


@cache
def _builtin_specs() -> tuple[ModelSpec, ...]:
    return tuple(
        _to_spec(raw, base=None, source="zoo.json", models_dir=_LABELS_DIR)
        for raw in _read_entries(_ZOO_FILE)
    )


class Catalog:
    """The built-in zoo entries plus the operator's manifest, for one models directory."""

    def __init__(self, specs: list[ModelSpec], models_dir: Path) -> None:
        self._specs = {spec.name: spec for spec in specs}
        self.models_dir = models_dir

    def names(self) -> list[str]:
        return list(self._specs)

    def get(self, name: str) -> ModelSpec:
        try:
            return self._specs[name]
        except KeyError:
            some = ", ".join(self.names()[:6])
            raise UnknownModel(f"unknown model {name!r}; available models include: {some}") from None

    def weights_path(self, spec: ModelSpec) -> Path:
        return self.models_dir / spec.weights

    def describe(self) -> list[dict[str, Any]]:
        """JSON-able listing: specs, whether weights are present, recorded sha256.

        A malformed lock file must not take the listing down (loads still refuse it)."""
        try:
            lock = read_lock(self.models_dir)
        except ManifestInvalid:
            lock = {}
        items = []
        for spec in self._specs.values():
            item = spec.to_dict()
            item["weights_present"] = self.weights_path(spec).is_file()
            item["sha256"] = lock.get(spec.weights)
            items.append(item)
        return items


def load_catalog(models_dir: Path) -> Catalog:
    """Built-in zoo entries, then ``<models_dir>/manifest.json`` (adds or overrides by name)."""
    specs = {spec.name: spec for spec in _builtin_specs()}
    manifest = models_dir / MANIFEST_NAME
    if manifest.is_file():
        for raw in _read_entries(manifest):
            base = specs.get(str(raw.get("name", "")))
            spec = _to_spec(raw, base=base, source=MANIFEST_NAME, models_dir=models_dir)
            specs[spec.name] = spec
    return Catalog(list(specs.values()), models_dir)
