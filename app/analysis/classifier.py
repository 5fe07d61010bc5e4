"""Batched inference over views of clips, turned into per-segment probabilities.

Views (clips x crops) from any segments share a batch. Each view's output becomes a
probability vector (softmax only for logit models: X3D and R(2+1)D hub heads already end
in a softmax, and a second one flattens the scores), and a segment's score is the mean of
its views' probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Literal

import torch
from torch import nn

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


class SegmentSums:
    """Per-segment sums of probability rows; a segment's score is the mean of its views'.
    Batching is the scheduler's (``app.analysis.pipeline``): rows of any segments, and of
    several jobs, arrive here after one forward pass."""

    def __init__(self) -> None:
        self.sums: dict[int, torch.Tensor] = {}
        self.counts: dict[int, int] = {}

    def accumulate(self, keys: Sequence[int], probs: torch.Tensor) -> None:
        """Add one probability row per key (a segment index) to that segment's sum."""
        for key, row in zip(keys, probs, strict=True):
            self.sums[key] = self.sums[key] + row if key in self.sums else row.clone()
            self.counts[key] = self.counts.get(key, 0) + 1

    def mean(self, segment: int) -> torch.Tensor:
        return self.sums[segment] / self.counts[segment]


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


def predict(
    model: nn.Module,
    views: Sequence[ClipInput],
    *,
    output: Literal["probabilities", "logits"],
    num_classes: int,
    device: torch.device,
) -> torch.Tensor:
    """One forward pass over ``views``: a float64 probability row per view, on the CPU."""
    batch = stack_views(views, device)
    with torch.inference_mode(), _autocast(device):
        out = model(list(batch) if isinstance(batch, list) else batch)
    out = out.float().cpu().reshape(out.shape[0], -1)
    if out.shape[1] != num_classes:
        raise WeightsInvalid(f"the model outputs {out.shape[1]} classes but its labelset has {num_classes}")
    return (torch.softmax(out, dim=1) if output == "logits" else out).double()
