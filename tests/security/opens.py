"""Watch a file for opens and reads with Linux inotify (ctypes): proof that nothing touched it."""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path
from types import TracebackType

import pytest

IN_ACCESS, IN_OPEN, IN_NONBLOCK = 0x001, 0x020, 0o4000


class OpenWatch:
    """Counts IN_OPEN/IN_ACCESS events on ``path`` between construction and ``events()``."""

    def __init__(self, path: Path) -> None:
        if not sys.platform.startswith("linux"):
            pytest.skip("inotify is Linux only")
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._fd = self._libc.inotify_init1(IN_NONBLOCK)
        if self._fd < 0:
            pytest.skip(f"inotify unavailable (errno {ctypes.get_errno()})")
        if self._libc.inotify_add_watch(self._fd, os.fsencode(path), IN_OPEN | IN_ACCESS) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch({path})")

    def events(self) -> int:
        """How many open/read events arrived so far (each record is 16 bytes + name)."""
        count = 0
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return count
            offset = 0
            while offset < len(data):
                name_len = int.from_bytes(data[offset + 12 : offset + 16], sys.byteorder)
                count += 1
                offset += 16 + name_len

    def __enter__(self) -> OpenWatch:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        os.close(self._fd)
