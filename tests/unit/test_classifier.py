"""The probability rule (softmax for logits only), per-segment means, top-k and runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from app.analysis.assemble import runs
from app.analysis.classifier import SegmentSums, predict, top_k
from app.analysis.results import SegmentResult
from app.errors import WeightsInvalid

LABELS = ("a", "b", "c", "d")


class Echo(nn.Module):
    """Returns the clip's first voxel per channel-free row: lets a test choose the model output."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.shape[0])
        return x[:, 0, 0, 0, :4]


def view(values: list[float]) -> torch.Tensor:
    out = torch.zeros(3, 1, 1, 4)
    out[0, 0, 0] = torch.tensor(values)
    return out


def score(output: str, batches: list[list[tuple[int, list[float]]]]) -> tuple[SegmentSums, Echo]:
    """Each batch is one forward pass over (segment, view) pairs, its rows summed per segment."""
    model = Echo()
    sums = SegmentSums()
    for batch in batches:
        probs = predict(
            model,
            [view(values) for _, values in batch],
            output=output,  # type: ignore[arg-type]
            num_classes=4,
            device=torch.device("cpu"),
        )
        sums.accumulate([segment for segment, _ in batch], probs)
    return sums, model


TWO_SEGMENTS = [[(0, [0.7, 0.1, 0.1, 0.1]), (0, [0.5, 0.3, 0.1, 0.1])], [(1, [0.1, 0.1, 0.1, 0.7])]]


def test_probability_outputs_are_not_softmaxed_again() -> None:
    sums, model = score("probabilities", TWO_SEGMENTS)
    assert np.allclose(sums.mean(0), torch.tensor([0.6, 0.2, 0.1, 0.1], dtype=torch.float64))
    assert np.allclose(sums.mean(1), torch.tensor([0.1, 0.1, 0.1, 0.7], dtype=torch.float64))
    assert model.calls == [2, 1] and sums.counts == {0: 2, 1: 1}


def test_logits_are_softmaxed_per_view_then_averaged() -> None:
    """Views of two segments share one batch; each row goes to its own segment."""
    sums, model = score("logits", [TWO_SEGMENTS[0] + TWO_SEGMENTS[1]])
    a = torch.softmax(torch.tensor([0.7, 0.1, 0.1, 0.1]), 0)
    b = torch.softmax(torch.tensor([0.5, 0.3, 0.1, 0.1]), 0)
    assert np.allclose(sums.mean(0), ((a + b) / 2).numpy(), atol=1e-6)
    assert float(sums.mean(0).sum()) == pytest.approx(1.0)
    assert model.calls == [3] and sums.counts == {0: 2, 1: 1}


def test_class_count_must_match_the_labelset() -> None:
    with pytest.raises(WeightsInvalid, match="4 classes"):
        predict(Echo(), [view([1, 2, 3, 4])], output="logits", num_classes=3, device=torch.device("cpu"))


def test_top_k_and_runs() -> None:
    probs = torch.tensor([0.1, 0.6, 0.05, 0.25], dtype=torch.float64)
    assert [(x.label, x.class_id) for x in top_k(probs, LABELS, 2)] == [("b", 1), ("d", 3)]
    assert [x.label for x in top_k(probs, LABELS, 4, min_score=0.2)] == ["b", "d"]

    means: dict[int, torch.Tensor] = {}

    def seg(i: int, best: int, p: float) -> SegmentResult:
        means[i] = torch.full((4,), (1 - p) / 3, dtype=torch.float64)
        means[i][best] = p
        return SegmentResult(i, float(i), float(i + 1), float(i), i + 0.9, ())

    segs = [seg(0, 1, 0.9), seg(1, 1, 0.7), seg(2, 2, 0.5), seg(3, 2, 0.3), seg(4, 2, 0.6)]
    assert [r.to_dict() for r in runs(segs, means, LABELS, min_score=0.0)] == [
        {"label": "b", "class_id": 1, "start": 0.0, "end": 2.0, "score": pytest.approx(0.8)},
        {"label": "c", "class_id": 2, "start": 2.0, "end": 5.0, "score": pytest.approx(1.4 / 3)},
    ]
    assert [(r.start, r.end) for r in runs(segs, means, LABELS, min_score=0.4)] == [
        (0.0, 2.0),
        (2.0, 3.0),
        (4.0, 5.0),
    ]
