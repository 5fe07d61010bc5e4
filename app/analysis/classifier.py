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
from contextlib import AbstractContextManager, nullcontext
from typing import Literal
from weakref import WeakKeyDictionary

import torch
from torch import nn

from app.analysis.batch_events import batch_ran
from app.analysis.oom_retry import OomGuard
from app.analysis.results import Label
from app.analysis.transforms import ClipInput
from app.errors import WeightsInvalid


def top_k(probs: torch.Tensor, labels: tuple[str, ...], k: int, min_score: float = 0.0) -> tuple[Label, ...]:
    """The ``k`` best classes of a probability vector, keeping those scoring >= ``min_score``."""
    scores, ids = torch.topk(probs.double(), min(k, probs.numel()))
    return tuple(
        Label(labels[int(i)], int(i), float(s))
        for s, i in zip(scores.tolist(), ids.tolist(), strict=True)
        if s >= min_score
    )


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
        self.sums: dict[int, torch.Tensor] = {}
        """Per segment: the rows' sum ("mean") or their element-wise maximum ("max")."""
        self.counts: dict[int, int] = {}

    def accumulate(self, keys: Sequence[int], probs: torch.Tensor) -> None:
        """Fold one probability row per key (a segment index) into that segment's sum or max."""
        for key, row in zip(keys, probs, strict=True):
            if key not in self.sums:
                self.sums[key] = row.clone()
            elif self.combine == "max":
                self.sums[key] = torch.maximum(self.sums[key], row)
            else:
                self.sums[key] = self.sums[key] + row
            self.counts[key] = self.counts.get(key, 0) + 1

    def mean(self, segment: int) -> torch.Tensor:
        """The mean of a segment's rows (only meaningful when ``combine`` is "mean")."""
        return self.sums[segment] / self.counts[segment]

    def combined(self, segment: int) -> torch.Tensor:
        """A segment's score: its views' mean or maximum, as ``combine`` says."""
        return self.sums[segment].clone() if self.combine == "max" else self.mean(segment)


def stack_views(views: Sequence[ClipInput], device: torch.device) -> ClipInput:
    """One batch from views (pinned and copied without blocking when the device is a GPU)."""
    cuda = device.type == "cuda"

    def move(t: torch.Tensor) -> torch.Tensor:
        return t.pin_memory().to(device, non_blocking=True) if cuda else t

    first = views[0]
    if isinstance(first, list):
        paths = [[v[p] for v in views if isinstance(v, list)] for p in range(len(first))]
        return [move(torch.stack(p)) for p in paths]
    return move(torch.stack([v for v in views if isinstance(v, torch.Tensor)]))


def _autocast(device: torch.device) -> AbstractContextManager[object]:
    if device.type != "cuda":
        return nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


_guards: WeakKeyDictionary[nn.Module, OomGuard] = WeakKeyDictionary()


def guard_for(model: nn.Module) -> OomGuard:
    """The model's out-of-memory guard: its learned batch cap lives as long as the model."""
    guard = _guards.get(model)
    if guard is None:
        guard = _guards[model] = OomGuard(on_batch=batch_ran)
    return guard


def predict(
    model: nn.Module,
    views: Sequence[ClipInput],
    *,
    output: Literal["probabilities", "logits"],
    num_classes: int,
    device: torch.device,
    task: Task = "classification",
) -> torch.Tensor:
    """A float64 probability row per view, on the CPU: one forward pass, or several when
    the batch does not fit in GPU memory (``oom_retry``: split, retried, same rows)."""

    def forward(part: Sequence[ClipInput]) -> torch.Tensor:
        batch = stack_views(part, device)
        with torch.inference_mode(), _autocast(device):
            out: torch.Tensor = model(list(batch) if isinstance(batch, list) else batch)
        return out.float().cpu().reshape(out.shape[0], -1)

    out = guard_for(model).run(forward, views)
    if out.shape[1] != num_classes:
        raise WeightsInvalid(f"the model outputs {out.shape[1]} classes but its labelset has {num_classes}")
    return probabilities(out, output=output, task=task).double()


def probabilities(
    out: torch.Tensor, *, output: Literal["probabilities", "logits"], task: Task
) -> torch.Tensor:
    """Rows of model outputs as probabilities: a softmax over a classifier's logits, an
    independent sigmoid per multi-label logit; probability outputs are taken as they are."""
    if output != "logits":
        return out
    return torch.sigmoid(out) if task == "multilabel" else torch.softmax(out, dim=1)
