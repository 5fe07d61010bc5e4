"""Giving the worker's free heap memory back to the OS (glibc's ``malloc_trim``).

Every clip passes through the worker as a few large short-lived blocks (its copy out of the
decode child's ring, the stacked batch, the backend's buffers: 4 MiB each for x3d_s).
glibc serves blocks that size from the heap once its mmap threshold has risen past them (it
rises when the first such block is freed), and the free memory between long-lived blocks is
not returned: with OpenVINO the worker's RSS grew by ~750 MiB over a 600 s video while the
memory Python and numpy hold stayed flat (with PyTorch it happened to stay flat). A
``malloc_trim(0)`` brought it back to the 60 s video's level each time (15-30 ms per call
with a 1.2 GiB process), so the clip sources call ``trim`` every ``TRIM_EVERY`` clips.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import cache

TRIM_EVERY = 32
"""Clips between two trims: ~4 s of a 720p job, well under 1 % of its time."""


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to do
        return None
    return trim


def trim() -> bool:
    """Return the heap's free pages to the OS; False where the C library cannot."""
    function = _malloc_trim()
    if function is None:
        return False
    function(0)
    return True
