"""A clip's model inputs as numpy arrays: what the pipeline batches, whatever runs the model.

One view is ``(3, T, S, S)`` float32, or SlowFast's ``[slow, fast]``; the slow pathway is
``fast[:, linspace(0, T-1, T//alpha).long()]`` as PyTorchVideo's ``PackPathway`` takes it
(not ``[::alpha]``), with linspace's indices as the plan takes them (``plan``).
"""

from __future__ import annotations

import numpy as np

from app.analysis.plan import uniform_subsample_indices

ClipInput = np.ndarray | list[np.ndarray]
"""What one view feeds the model: (3, T, S, S), or [slow, fast] for SlowFast."""


def pack_pathway(fast: np.ndarray, alpha: int) -> list[np.ndarray]:
    """SlowFast's ``[slow, fast]`` from the fast pathway's ``(3, T, S, S)`` frames."""
    t = fast.shape[1]
    return [np.ascontiguousarray(fast[:, uniform_subsample_indices(t, t // alpha)]), fast]


def array_views(views: np.ndarray, alpha: int | None) -> list[ClipInput]:
    """A clip's model-ready ``(views, C, T, H, W)`` array as the model's inputs, one per view
    (SlowFast's two pathways packed when ``alpha``): shared memory or not, no copy of a view."""
    return [pack_pathway(views[v], alpha) if alpha else views[v] for v in range(views.shape[0])]
