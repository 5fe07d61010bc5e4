"""The start-up check of the data dir (``serve``, ``worker``, ``migrate``), before any database work.

A read-only or uncreatable data dir used to surface as SQLAlchemy's "unable to open database
file" traceback, which names neither the directory nor the setting that chose it. This check
says what is wrong, where, and what to do, in one line.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from app.errors import DataDirUnusable

_CREATE_HINT = "set VAS_DATA_DIR to a directory that exists or can be created"
_WRITE_HINT = "make it writable for this user, or set VAS_DATA_DIR to a writable directory"


def ensure_data_dir(data_dir: Path) -> None:
    """Create ``data_dir`` if missing, then prove it writable by creating and removing a file
    (permission bits alone do not tell: root ignores them, a read-only mount does not)."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataDirUnusable(
            f"data dir {data_dir} cannot be created: {_reason(exc, data_dir)}; {_CREATE_HINT}",
            path=str(data_dir),
        ) from exc
    try:
        handle, probe = tempfile.mkstemp(prefix=".write-check-", dir=data_dir)
    except OSError as exc:
        raise DataDirUnusable(
            f"data dir {data_dir} is not writable: {_reason(exc, data_dir)}; {_WRITE_HINT}",
            path=str(data_dir),
        ) from exc
    os.close(handle)
    os.unlink(probe)


def _reason(exc: OSError, data_dir: Path) -> str:
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        blocker = _first_non_directory(data_dir)
        return f"{blocker} is not a directory" if blocker else "a path component is not a directory"
    if exc.errno == errno.EROFS:
        return "it is on a read-only file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied for uid {os.geteuid()}"
    if exc.errno == errno.ENOSPC:
        return "no space left on its file system"
    return exc.strerror or str(exc)


def _first_non_directory(path: Path) -> Path | None:
    """The nearest existing ancestor (or ``path`` itself) when it is not a directory."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None
