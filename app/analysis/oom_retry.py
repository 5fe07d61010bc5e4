"""A CUDA out-of-memory fails one forward pass, never the worker: split the batch and retry.

GPU memory left to a batch depends on what else runs on the card (other jobs' models, the
caching allocator's fragments), so a batch size that fitted a minute ago may not fit now.
``OomGuard.run`` calls ``fn`` on the whole batch; on ``torch.cuda.OutOfMemoryError`` it
frees the allocator's cache, halves the batch and runs the halves (recursively), then
concatenates their rows in order, so the caller sees the same rows as the unsplit pass. The
largest size that ran after an OOM becomes the guard's ``cap``: later batches are cut to
it up front instead of failing first every time. One view that still does not fit raises
``GpuOutOfMemory`` (an ``AnalysisError``: the job fails or retries, the worker goes on).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

from app.errors import AnalysisError

log = logging.getLogger(__name__)

T = TypeVar("T")


class GpuOutOfMemory(AnalysisError):
    """One view alone does not fit in GPU memory. Retried: memory held by other jobs on the
    card may be free on the next attempt. (Defined here, not in ``app/errors.py``, which is
    at the house's module-size limit; it is an ``AnalysisError`` like the others there.)"""

    code = "gpu_out_of_memory"
    title = "GPU out of memory"


def _cuda_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is torch's CUDA out-of-memory error (never, where torch is not loaded)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError)


def _free_cached() -> None:
    """Give the failed pass's cached blocks back before the smaller retry."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


class OomGuard:
    """Runs batches through ``fn``, splitting them after a CUDA OOM; ``cap`` remembers the
    size that fitted (None until an OOM happened). ``ooms`` counts the failed passes;
    ``on_batch`` hears the size of every pass that ran (the batch-size metric)."""

    def __init__(self, on_batch: Callable[[int], None] | None = None) -> None:
        self.cap: int | None = None
        self.ooms = 0
        self.on_batch = on_batch

    def run(self, fn: Callable[[Sequence[T]], np.ndarray], items: Sequence[T]) -> np.ndarray:
        """``fn(items)``'s rows, computed in as many passes as memory needs."""
        if not items:
            raise ValueError("an empty batch")
        size = len(items) if self.cap is None else min(self.cap, len(items))
        parts = [self._fit(fn, items[i : i + size]) for i in range(0, len(items), size)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _fit(self, fn: Callable[[Sequence[T]], np.ndarray], items: Sequence[T]) -> np.ndarray:
        try:
            out = fn(items)
        except Exception as exc:
            if not _cuda_oom(exc):
                raise
            self.ooms += 1
            _free_cached()
            if len(items) == 1:
                raise GpuOutOfMemory(f"one view does not fit in GPU memory: {exc}") from None
            half = (len(items) + 1) // 2
            self.cap = half if self.cap is None else min(self.cap, half)
            log.warning("CUDA out of memory at batch %d: retrying as batches of %d", len(items), half)
            return np.concatenate([self._fit(fn, items[:half]), self._fit(fn, items[half:])])
        if self.on_batch is not None:
            self.on_batch(len(items))
        return out
