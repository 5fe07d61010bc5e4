"""Batched inference over views of clips, turned into per-segment probabilities.

Views (clips x crops) from any segments share a batch. Each view's output becomes a
probability vector: for a classifier one softmax (only for logit models: X3D and R(2+1)D
hub heads already end in a softmax, and a second one flattens the scores); for a
multi-label model an independent sigmoid per label (again only for logits). A segment's
score combines its views' vectors by the spec's ``view_combine``: their mean (Kinetics'
protocol) or, label by label, their maximum (Charades').
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal
from weakref import WeakKeyDictionary

import numpy as np

from app.analysis.batch_events import batch_ran
from app.analysis.clip_views import ClipInput
from app.analysis.oom_retry import OomGuard
from app.analysis.results import Label
from app.analysis.runners import Runner, as_runner
from app.errors import WeightsInvalid

if TYPE_CHECKING:
    from torch import nn


def top_k(probs: Any, labels: tuple[str, ...], k: int, min_score: float = 0.0) -> tuple[Label, ...]:
    """The ``k`` best classes of a probability vector (best first; ties: the lower class id),
    keeping those scoring >= ``min_score``."""
    row = np.asarray(probs, dtype=np.float64).reshape(-1)
    ids = np.argsort(-row, kind="stable")[: min(k, row.size)]
    return tuple(Label(labels[int(i)], int(i), float(row[i])) for i in ids if row[i] >= min_score)


Task = Literal["classification", "multilabel", "detection", "person_detector"]
"""A spec's task; detection jobs never reach ``predict`` (``detection_run.py`` scores them)."""
ViewCombine = Literal["mean", "max"]


class SegmentSums:
    """Per-segment sums (``combine="mean"``) or element-wise maxima (``"max"``) of
    probability rows; ``combined`` is a segment's score. Batching is the scheduler's
    (``app.analysis.pipeline``): rows of any segments, and of several jobs, arrive here
    after one forward pass."""

    def __init__(self, combine: ViewCombine = "mean") -> None:
        self.combine = combine
        self.sums: dict[int, np.ndarray] = {}
        """Per segment: the rows' sum ("mean") or their element-wise maximum ("max")."""
        self.counts: dict[int, int] = {}

    def accumulate(self, keys: Sequence[int], probs: Any) -> None:
        """Fold one probability row per key (a segment index) into that segment's sum or max."""
        for key, row in zip(keys, np.asarray(probs, dtype=np.float64), strict=True):
            if key not in self.sums:
                self.sums[key] = row.copy()
            elif self.combine == "max":
                self.sums[key] = np.maximum(self.sums[key], row)
            else:
                self.sums[key] = self.sums[key] + row
            self.counts[key] = self.counts.get(key, 0) + 1

    def mean(self, segment: int) -> np.ndarray:
        """The mean of a segment's rows (only meaningful when ``combine`` is "mean")."""
        mean: np.ndarray = self.sums[segment] / self.counts[segment]
        return mean

    def combined(self, segment: int) -> np.ndarray:
        """A segment's score: its views' mean or maximum, as ``combine`` says."""
        return self.sums[segment].copy() if self.combine == "max" else self.mean(segment)


def stack_views(views: Sequence[ClipInput]) -> list[np.ndarray]:
    """One batch from views: an array per input (one, or SlowFast's slow and fast)."""
    first = views[0]
    if isinstance(first, list):
        return [np.stack([np.asarray(v[p]) for v in views if isinstance(v, list)]) for p in range(len(first))]
    return [np.stack([np.asarray(v) for v in views])]


_guards: WeakKeyDictionary[Any, OomGuard] = WeakKeyDictionary()


def guard_for(model: Runner | nn.Module, device: Any = "cpu") -> OomGuard:
    """The runner's out-of-memory guard: its learned batch cap lives as long as the runner."""
    runner = as_runner(model, str(device))
    guard = _guards.get(runner)
    if guard is None:
        guard = _guards[runner] = OomGuard(on_batch=batch_ran)
    return guard


def predict(
    model: Runner | nn.Module,
    views: Sequence[ClipInput],
    *,
    output: Literal["probabilities", "logits"],
    num_classes: int,
    device: Any = "cpu",
    task: Task = "classification",
) -> np.ndarray:
    """A float64 probability row per view: one forward pass, or several when the batch does
    not fit in GPU memory (``oom_retry``: split, retried, same rows). ``model`` is a runner
    (``runners``) or a torch module, run on ``device``."""
    runner = as_runner(model, str(device))

    def forward(part: Sequence[ClipInput]) -> np.ndarray:
        out = runner(stack_views(part))
        return np.asarray(out, dtype=np.float32).reshape(out.shape[0], -1)

    out = guard_for(runner, device).run(forward, views)
    if out.shape[1] != num_classes:
        raise WeightsInvalid(f"the model outputs {out.shape[1]} classes but its labelset has {num_classes}")
    return probabilities(out, output=output, task=task).astype(np.float64)


def probabilities(out: Any, *, output: Literal["probabilities", "logits"], task: Task) -> np.ndarray:
    """Rows of model outputs as probabilities (float32): a softmax over a classifier's logits,
    an independent sigmoid per multi-label logit; probability outputs are taken as they are."""
    rows = np.asarray(out, dtype=np.float32)
    if output != "logits":
        return rows
    if task == "multilabel":
        with np.errstate(over="ignore"):  # exp(-x) of a very negative logit: inf, 1/inf = 0
            sigmoid: np.ndarray = 1.0 / (1.0 + np.exp(-rows))
        return sigmoid
    shifted = np.exp(rows - rows.max(axis=1, keepdims=True))
    softmax: np.ndarray = shifted / shifted.sum(axis=1, keepdims=True)
    return softmax
