"""Who hears the size of every forward pass: the worker's batch-size histogram.

The engine stays free of metrics (``app/analysis`` knows nothing of Prometheus); a process
that exports metrics adds a listener once at start-up, and ``classifier.predict`` reports
each pass it ran, after any out-of-memory split (``oom_retry``), so the histogram shows the
sizes that actually ran on the device.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

BatchListener = Callable[[int], None]

_listeners: list[BatchListener] = []


def add_batch_listener(listener: BatchListener) -> None:
    """Call ``listener(size)`` after every forward pass in this process."""
    _listeners.append(listener)


def remove_batch_listener(listener: BatchListener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def batch_ran(size: int) -> None:
    """Tell the listeners; a failing listener is logged, never fails the batch."""
    for listener in list(_listeners):
        try:
            listener(size)
        except Exception:
            log.exception("batch listener failed")
