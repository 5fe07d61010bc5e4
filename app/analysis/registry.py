"""``<models_dir>/manifest.json`` written by the CLI: add or remove one model, atomically.

Every change happens under an advisory lock and re-reads the manifest inside it, so two
``models add`` runs cannot lose each other's entry. The manifest itself is replaced with
``os.replace`` (readers see the old or the new file, never half of one); files that come
with an entry (weights, labels) are moved in before the manifest names them and taken back
out if anything fails, so a failed add leaves the models directory as it was. No torch
here: the checkpoint work is ``custom_model.py``'s.
"""

from __future__ import annotations

import json
import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from app.analysis.lockfile import atomic_write_bytes, flocked, forget_sha256, record_sha256
from app.analysis.manifest import MANIFEST_NAME, read_entries
from app.errors import ManifestInvalid


def manifest_lock(models_dir: Path) -> AbstractContextManager[None]:
    """Serialise manifest writers (CLI runs on several hosts sharing the folder use flock too)."""
    return flocked(models_dir / f".{MANIFEST_NAME}.lock")


def _entries(models_dir: Path) -> list[Any]:
    manifest = models_dir / MANIFEST_NAME
    return read_entries(manifest) if manifest.exists() else []


def manifest_entry(models_dir: Path, name: str) -> dict[str, Any] | None:
    """The raw manifest entry called ``name``, if any."""
    return next((e for e in _entries(models_dir) if isinstance(e, dict) and e.get("name") == name), None)


def _write(models_dir: Path, entries: list[Any]) -> None:
    manifest = models_dir / MANIFEST_NAME
    doc: dict[str, Any] = {}
    if manifest.exists():  # keep the operator's other top-level keys ($schema, _comment)
        old = json.loads(manifest.read_text(encoding="utf-8"))
        doc = {k: v for k, v in old.items() if k != "models"}
    doc["models"] = entries
    mode = manifest.stat().st_mode & 0o777 if manifest.exists() else 0o644
    atomic_write_bytes(manifest, (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    os.chmod(manifest, mode)  # readable by workers running as other users, like a hand-written one


def add_entry(models_dir: Path, entry: dict[str, Any], staged: list[Path], weights: str) -> None:
    """Move ``staged`` files into ``models_dir``, record the sha256 of ``weights`` and append
    ``entry`` to the manifest; on any failure undo what was done and re-raise."""
    moved: list[Path] = []
    recorded = False
    with manifest_lock(models_dir):
        entries = _entries(models_dir)  # a malformed manifest is refused before anything moves
        if any(isinstance(e, dict) and e.get("name") == entry["name"] for e in entries):
            raise ManifestInvalid(
                f"model {entry['name']!r} is already in {MANIFEST_NAME}; `models remove {entry['name']}` first"
            )
        clashes = [p.name for p in staged if (models_dir / p.name).exists()]
        if clashes:
            raise ManifestInvalid(f"{', '.join(clashes)} already exist in {models_dir}; nothing was changed")
        try:
            for path in staged:
                os.replace(path, models_dir / path.name)
                moved.append(models_dir / path.name)
            record_sha256(models_dir, weights)
            recorded = True
            _write(models_dir, [*entries, entry])
        except BaseException:
            for path in moved:
                path.unlink(missing_ok=True)
            if recorded:
                forget_sha256(models_dir, weights)
            raise


def remove_entry(models_dir: Path, name: str, keep_files: set[str]) -> list[str]:
    """Take ``name`` out of the manifest, then delete its weights and labels files (except
    those in ``keep_files``, still used by another model) and its recorded hash. Returns
    the deleted file names."""
    with manifest_lock(models_dir):
        entries = _entries(models_dir)
        entry = next((e for e in entries if isinstance(e, dict) and e.get("name") == name), None)
        if entry is None:
            raise ManifestInvalid(f"model {name!r} is not in {models_dir / MANIFEST_NAME}")
        rest = [e for e in entries if e is not entry]
        _write(models_dir, rest)  # the catalog stops listing it before its files go
        used = set(keep_files)
        for other in rest:
            if isinstance(other, dict):
                used.update(
                    {str(other.get("weights") or f"{other.get('name')}.pyth"), str(other.get("labels"))}
                )
        files = [str(entry.get("weights") or f"{name}.pyth")]
        if isinstance(entry.get("labels"), str):
            files.append(entry["labels"])
        deleted = []
        for file in files:
            if file in used:
                continue
            path = models_dir / file
            if path.is_file():
                path.unlink()
                deleted.append(file)
            forget_sha256(models_dir, file)
        return deleted
