"""``heap.trim`` gives the free memory between long-lived heap blocks back to the OS (glibc),
the pattern that made a worker's RSS grow with the video's length (``app/analysis/heap.py``)."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
from pathlib import Path

from app.analysis.heap import trim
from tests.conftest import skip_or_fail

BLOCK = 4 * 1024**2


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_trim_returns_the_free_memory_between_live_blocks() -> None:
    """In a fresh interpreter: a process that set ``M_MMAP_THRESHOLD`` itself (or whose heap
    already holds large free chunks) mmaps such blocks instead, and frees return them at once."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim  # noqa: B018  (glibc only)
    except (OSError, AttributeError):
        skip_or_fail("not glibc: malloc_trim is glibc's")
    code = "import json; from tests.unit.test_heap import scenario; print(json.dumps(scenario()))"
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    before, after = json.loads(done.stdout)
    assert before - after > 128, (before, after)


def scenario() -> tuple[float, float]:
    """(RSS before, RSS after) a trim, with 64 freed 4 MiB blocks between live ones (MiB)."""
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.free(libc.malloc(BLOCK))  # a freed mmapped block raises the mmap threshold past 4 MiB
    blocks, pins = [], []
    for _ in range(64):  # 4 MiB clips on the heap, a long-lived block after each (from the top:
        block = libc.malloc(BLOCK)  # larger than any free chunk there may be)
        ctypes.memset(block, 1, BLOCK)
        blocks.append(block)
        pins.append(libc.malloc(256 * 1024))
    for block in blocks:
        libc.free(block)
    before = rss_mib()
    assert trim()
    after = rss_mib()
    for pin in pins:
        libc.free(pin)
    return before, after
