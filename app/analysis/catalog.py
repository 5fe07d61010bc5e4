"""What models exist: their clip specs as data (zoo.json + ``<models_dir>/manifest.json``).

No torch or av here: the API imports this module to validate job submissions and to
list models. Every entry names a builder (a dotted path under ``pytorchvideo.models.``),
the zoo checkpoint file, and the exact preprocessing the zoo test protocol used.

Crop sizes: ``short_side``/``crop`` are the 1-crop protocol (PySlowFast 1-crop test: short
side ``TRAIN_JITTER_SCALES[0]``, crop ``TEST_CROP_SIZE``); for X3D-XS/S that is 182 -> 160,
the value PySlowFast's configs give "if TEST.NUM_SPATIAL_CROPS: 1". With 3 crops the
zoo protocol scales the short side to ``three_crop_size`` and takes three crops of that
size (X3D-XS/S: 182, MViT: 224 because its input is fixed).

A bad manifest entry is the operator's typo in one model: it is skipped, logged once
and listed in ``Catalog.skipped``, and every other model stays available. Only a
manifest that is not a ``{"models": [...]}`` JSON document is refused whole.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from app.analysis.builder_lookup import BuilderLookup, lookup_builder
from app.analysis.lockfile import read_lock
from app.analysis.manifest import MANIFEST_NAME, entry_to_spec, read_entries
from app.analysis.spec import ModelSpec, clip_seconds, default_segment_seconds, read_labels
from app.errors import ManifestInvalid, UnknownModel, WeightsMissing

__all__ = [
    "Catalog",
    "ModelSpec",
    "SkippedEntry",
    "builtin_names",
    "builtin_weights",
    "clip_seconds",
    "default_segment_seconds",
    "load_catalog",
    "missing_weights",
    "read_labels",
]

log = logging.getLogger(__name__)

_ZOO_FILE = Path(__file__).resolve().parent / "zoo.json"
FETCH_COMMAND = "python -m app models fetch"


@dataclass(frozen=True)
class SkippedEntry:
    """A manifest entry left out of the catalog: its name (or position) and why."""

    name: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "reason": self.reason}


def missing_weights(spec: ModelSpec, models_dir: Path, *, why: str = "") -> WeightsMissing:
    """The one ``weights_missing`` error (API submission, worker load, CLI) and its remedy."""
    if spec.url:
        remedy = f"run `{FETCH_COMMAND} {spec.name}` (it downloads {spec.url}) or copy the file there"
    else:
        remedy = f"copy {spec.weights} there"
    return WeightsMissing(
        f"weights file {spec.weights!r} for model {spec.name!r} not found in {models_dir}: {remedy}"
        + (f"; {why}" if why else ""),
        file=spec.weights,
        models_dir=str(models_dir),
        url=spec.url,
    )


class Catalog:
    """The built-in zoo entries plus the operator's manifest, for one models directory.

    A catalog from ``load_catalog`` follows ``<models_dir>/manifest.json``: when the file's
    identity (inode, size, mtime) changes, the next lookup re-reads it, so a model added by
    ``models add`` (or by hand) is served by a running API and worker without a restart."""

    def __init__(
        self,
        specs: list[ModelSpec],
        models_dir: Path,
        skipped: tuple[SkippedEntry, ...] = (),
        *,
        follow_manifest: bool = False,
        manifest_version: tuple[int, int, int] | None = None,
    ) -> None:
        """``manifest_version``: the identity of the manifest that ``specs`` were read from."""
        self.models_dir = models_dir
        self._follow = follow_manifest
        self._identity = manifest_version
        self._state = ({spec.name: spec for spec in specs}, skipped)

    @property
    def _specs(self) -> dict[str, ModelSpec]:
        return self._current()[0]

    @property
    def skipped(self) -> tuple[SkippedEntry, ...]:
        return self._current()[1]

    def _current(self) -> tuple[dict[str, ModelSpec], tuple[SkippedEntry, ...]]:
        """The specs and skipped entries of the manifest as it is now (one stat per lookup)."""
        if self._follow:
            identity = manifest_identity(self.models_dir)
            if identity != self._identity:
                specs, skipped = _read_catalog(self.models_dir)
                self._state, self._identity = ({spec.name: spec for spec in specs}, skipped), identity
        return self._state

    def names(self) -> list[str]:
        return list(self._specs)

    def get(self, name: str) -> ModelSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise UnknownModel(self._unknown_message(name)) from None

    def _unknown_message(self, name: str) -> str:
        """Models that can run here first, then the ones still waiting for weights."""
        specs = self._specs
        ready = [n for n, spec in specs.items() if self.weights_present(spec)]
        waiting = [n for n in specs if n not in ready]
        close = difflib.get_close_matches(name, list(specs), n=1)
        parts = [f"unknown model {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")]
        if ready:
            parts.append(f"models with weights in {self.models_dir}: {', '.join(ready)}")
        else:
            parts.append(f"no model has weights in {self.models_dir} yet")
        if waiting:
            parts.append(f"models without weights (`{FETCH_COMMAND} NAME` first): {', '.join(waiting)}")
        return "; ".join(parts)

    def weights_path(self, spec: ModelSpec) -> Path:
        return self.models_dir / spec.weights

    def weights_present(self, spec: ModelSpec) -> bool:
        return self.weights_path(spec).is_file()

    def describe(self) -> list[dict[str, Any]]:
        """JSON-able listing: specs, the default ``min_score``, whether weights are present,
        recorded sha256.

        A malformed lock file must not take the listing down (loads still refuse it)."""
        try:
            lock = read_lock(self.models_dir)
        except ManifestInvalid:
            lock = {}
        items = []
        for spec in self._specs.values():
            item = spec.to_dict()
            item["min_score"] = spec.min_score
            item["weights_present"] = self.weights_present(spec)
            item["sha256"] = lock.get(spec.weights)
            items.append(item)
        return items


def manifest_identity(models_dir: Path) -> tuple[int, int, int] | None:
    """(inode, size, mtime) of the manifest, None when there is none: a replace (new inode),
    an edit in place (size or mtime) and a removal all change it."""
    try:
        stat = (models_dir / MANIFEST_NAME).stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


@cache
def _builtin_specs() -> tuple[ModelSpec, ...]:
    """zoo.json is ours and tested: any problem in it is a bug, raised, never skipped."""
    return tuple(
        entry_to_spec(raw, base=None, builtin=True, models_dir=_ZOO_FILE.parent)
        for raw in read_entries(_ZOO_FILE)
    )


def builtin_names() -> list[str]:
    """The zoo models every catalog starts with (a manifest entry of that name overrides)."""
    return [spec.name for spec in _builtin_specs()]


def builtin_weights() -> set[str]:
    """The zoo models' weights file names (``models remove`` never deletes these)."""
    return {spec.weights for spec in _builtin_specs()}


def _manifest_spec(raw: Any, known: dict[str, ModelSpec], models_dir: Path) -> ModelSpec:
    name = raw.get("name") if isinstance(raw, dict) else None
    base = known.get(name) if isinstance(name, str) else None
    spec = entry_to_spec(raw, base=base, builtin=False, models_dir=models_dir)
    if (base is None or spec.builder != base.builder) and lookup_builder(
        spec.builder
    ) is BuilderLookup.MISSING:
        raise ManifestInvalid(f"model {spec.name!r}: builder {spec.builder!r} does not exist in pytorchvideo")
    return spec


def _entry_label(raw: Any, position: int) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    return name if isinstance(name, str) and name else f"entry #{position}"


@cache
def _warn_once(manifest: str, mtime_ns: int, label: str, reason: str) -> None:
    """Log a skipped entry once per manifest version, not on every catalog load."""
    log.warning("model %r in %s skipped: %s", label, manifest, reason)


def _read_catalog(models_dir: Path) -> tuple[list[ModelSpec], tuple[SkippedEntry, ...]]:
    """Built-in zoo entries, then ``<models_dir>/manifest.json`` (adds or overrides by name)."""
    specs = {spec.name: spec for spec in _builtin_specs()}
    skipped: list[SkippedEntry] = []
    manifest = models_dir / MANIFEST_NAME
    if manifest.is_file():
        mtime_ns = manifest.stat().st_mtime_ns
        for position, raw in enumerate(read_entries(manifest), start=1):
            try:
                spec = _manifest_spec(raw, specs, models_dir)
            except ManifestInvalid as exc:
                skipped.append(SkippedEntry(_entry_label(raw, position), exc.detail))
                _warn_once(str(manifest), mtime_ns, skipped[-1].name, exc.detail)
                continue
            specs[spec.name] = spec
    return list(specs.values()), tuple(skipped)


def load_catalog(models_dir: Path) -> Catalog:
    """The catalog of ``models_dir``; it re-reads the manifest whenever the file changes.

    A manifest that stops being a ``{"models": [...]}`` document after loading raises
    ManifestInvalid on the next lookup, as it would have at startup."""
    identity = manifest_identity(models_dir)
    specs, skipped = _read_catalog(models_dir)
    return Catalog(specs, models_dir, skipped, follow_manifest=True, manifest_version=identity)
