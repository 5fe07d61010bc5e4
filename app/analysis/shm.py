"""A ring of equal slots in one anonymous shared-memory file, shared with the decode child.

The parent creates the file (``memfd_create`` where the OS has it, else an unlinked temp
file) and maps it; the child inherits the descriptor and maps it too. No name exists
anywhere: nothing to leak in ``/dev/shm`` when a process is killed, and no ``/dev/shm``
size limit (64 MiB in a default container). The child writes a clip into a free
slot and sends the slot's number; the parent copies it out and gives the number back. The
slots in flight are the only memory the decoded clips take, whatever the video's length.
"""

from __future__ import annotations

import mmap
import os
import tempfile

import numpy as np


def _anonymous_file(size: int) -> int:
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("vas-decode-ring", os.MFD_CLOEXEC)
    else:  # pragma: no cover - non-Linux
        fd, path = tempfile.mkstemp(prefix="vas-decode-ring-")
        os.unlink(path)
    os.ftruncate(fd, size)
    return fd


class SlotRing:
    """``slots`` buffers of ``slot_bytes`` each; ``array`` gives a numpy view of one slot."""

    def __init__(self, fd: int, slots: int, slot_bytes: int) -> None:
        self.fd, self.slots, self.slot_bytes = fd, slots, slot_bytes
        self._map: mmap.mmap | None = mmap.mmap(fd, slots * slot_bytes)

    @classmethod
    def create(cls, slots: int, slot_bytes: int) -> SlotRing:
        if slots < 1 or slot_bytes < 1:
            raise ValueError("need at least one slot of at least one byte")
        return cls(_anonymous_file(slots * slot_bytes), slots, slot_bytes)

    @classmethod
    def attach(cls, fd: int, slots: int, slot_bytes: int) -> SlotRing:
        """The child's side: map the inherited descriptor ``fd``."""
        return cls(fd, slots, slot_bytes)

    def array(self, slot: int, shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
        """A view of slot ``slot`` (drop it before ``close``)."""
        if self._map is None:
            raise ValueError("the ring is closed")
        if not 0 <= slot < self.slots:
            raise IndexError(f"slot {slot} of {self.slots}")
        count = int(np.prod(shape))
        if count * np.dtype(dtype).itemsize > self.slot_bytes:
            raise ValueError(f"{shape} does not fit a slot of {self.slot_bytes} bytes")
        flat: np.ndarray = np.frombuffer(self._map, dtype=dtype, count=count, offset=slot * self.slot_bytes)
        return flat.reshape(shape)

    def close(self) -> None:
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # a view is still alive; the mapping goes with it
                pass
            self._map = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
