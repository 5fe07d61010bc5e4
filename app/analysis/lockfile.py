"""``<models_dir>/weights.lock.json``: weights file name -> sha256, as recorded by the operator.

A load verifies the recorded hash, so a truncated download or a swapped file fails
loudly instead of serving wrong weights. Writes are atomic (temp + fsync + rename)
under an advisory lock so the CLI and a worker can record hashes concurrently.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from app.errors import ManifestInvalid

LOCK_NAME = "weights.lock.json"


def file_sha256(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def read_lock(models_dir: Path) -> dict[str, str]:
    """The recorded hashes; an absent file means nothing is recorded."""
    path = models_dir / LOCK_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestInvalid(f"{LOCK_NAME} in {models_dir} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ManifestInvalid(f'{LOCK_NAME} must map file names to sha256 strings: {{"X3D_S.pyth": "..."}}')
    return {k: v.lower() for k, v in data.items()}


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``path`` so readers see the old or the new content, never a partial file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def flocked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created empty if absent)."""
    with path.open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _locked(models_dir: Path) -> AbstractContextManager[None]:
    return flocked(models_dir / f".{LOCK_NAME}.lock")


def record_sha256(models_dir: Path, file_name: str, digest: str | None = None) -> str:
    """Record (computing it when not given) the sha256 of ``models_dir/file_name``."""
    digest = (digest or file_sha256(models_dir / file_name)).lower()
    with _locked(models_dir):
        lock = read_lock(models_dir)
        lock[file_name] = digest
        body = json.dumps(dict(sorted(lock.items())), indent=2) + "\n"
        atomic_write_bytes(models_dir / LOCK_NAME, body.encode("utf-8"))
    return digest


def forget_sha256(models_dir: Path, file_name: str) -> None:
    """Drop ``file_name``'s recorded hash (its model was removed); absent is fine."""
    with _locked(models_dir):
        lock = read_lock(models_dir)
        if lock.pop(file_name, None) is None:
            return
        body = json.dumps(dict(sorted(lock.items())), indent=2) + "\n"
        atomic_write_bytes(models_dir / LOCK_NAME, body.encode("utf-8"))
