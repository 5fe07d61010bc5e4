"""Blob storage for uploaded videos: a directory (local disk or a shared volume).

Writes are atomic: data goes to ``.tmp/<key>.part`` and is fsynced, then renamed
into place, so a reader never sees a half-written video and a crash leaves only
a temp file that the orphan sweep removes. Keys are job ids chosen by the
service, never client file names.

A full disk (``ENOSPC``, or ``EDQUOT`` over a quota) is ``InsufficientStorage``, not an
``OSError``: the API answers 507, and an aborted write removes its temp file even
when closing it fails for the same reason.
"""

from __future__ import annotations

import errno
import os
import re
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from app.errors import InsufficientStorage, Unavailable

_KEY = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def _check_key(key: str) -> str:
    if not _KEY.match(key):
        raise ValueError(f"invalid blob key {key!r}")
    return key


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


@contextmanager
def _disk_full_is_insufficient_storage(what: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise InsufficientStorage(f"{what}: the disk is full ({exc.strerror})") from exc
        raise


class BlobWriter:
    """An in-progress upload. ``commit()`` publishes it, ``abort()`` removes it."""

    def __init__(self, temp: Path, final: Path) -> None:
        self._temp, self._final = temp, final
        with _disk_full_is_insufficient_storage("the upload could not be stored"):
            self._fh: BinaryIO | None = temp.open("xb")
        self.size = 0

    def write(self, data: bytes) -> None:
        assert self._fh is not None, "writer already closed"
        with _disk_full_is_insufficient_storage("the upload could not be stored"):
            self._fh.write(data)
        self.size += len(data)

    @property
    def temp_path(self) -> Path:
        """The data written so far (for probing before commit)."""
        if self._fh is not None:
            with _disk_full_is_insufficient_storage("the upload could not be stored"):
                self._fh.flush()
        return self._temp

    def commit(self) -> None:
        """Publish the file; on an error the caller still owes ``abort()``."""
        assert self._fh is not None, "writer already closed"
        with _disk_full_is_insufficient_storage("the upload could not be stored"):
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None
            os.replace(self._temp, self._final)
            fsync_dir(self._final.parent)

    def abort(self) -> None:
        """Remove the partial file. Closing flushes what is buffered, which fails on a full
        disk: that error is moot, the file goes anyway."""
        fh, self._fh = self._fh, None
        if fh is not None:
            with suppress(OSError):
                fh.close()
        self._temp.unlink(missing_ok=True)


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (a crash right after it keeps the new name)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore(ABC):
    @abstractmethod
    def writer(self, key: str) -> BlobWriter: ...

    @abstractmethod
    def path(self, key: str) -> Path:
        """A local path the worker can open (shared volume in scale-out)."""

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def keys(self) -> list[tuple[str, float]]:
        """(key, mtime) of every stored blob."""

    @abstractmethod
    def check_writable(self) -> None:
        """Raise Unavailable unless a small file can be written and removed."""

    @abstractmethod
    def sweep_temp(self, older_than_seconds: float) -> int:
        """Remove abandoned partial uploads; returns how many."""


class LocalBlobStore(BlobStore):
    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / ".tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)

    def writer(self, key: str) -> BlobWriter:
        _check_key(key)
        return BlobWriter(self._tmp / f"{key}.{uuid.uuid4().hex[:8]}.part", self.root / key)

    def path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def keys(self) -> list[tuple[str, float]]:
        found = []
        for entry in os.scandir(self.root):
            if entry.is_file() and _KEY.match(entry.name):
                found.append((entry.name, entry.stat().st_mtime))
        return found

    def check_writable(self) -> None:
        """The probe file goes whether or not its write succeeded (a full disk fails the
        write after creating the file)."""
        probe = self._tmp / f"ready-{uuid.uuid4().hex}"
        try:
            with _disk_full_is_insufficient_storage("blob storage is not writable"):
                probe.write_bytes(b"ok")
        except OSError as exc:
            raise Unavailable(f"blob storage is not writable: {exc.strerror}") from exc
        finally:
            with suppress(OSError):
                probe.unlink(missing_ok=True)

    def sweep_temp(self, older_than_seconds: float) -> int:
        cutoff = time.time() - older_than_seconds
        removed = 0
        for entry in os.scandir(self._tmp):
            if entry.is_file() and entry.stat().st_mtime < cutoff:
                Path(entry.path).unlink(missing_ok=True)
                removed += 1
        return removed
