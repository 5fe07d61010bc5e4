"""Batching, the probability rule (softmax for logits only) and per-segment means."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from app.analysis.assemble import runs
from app.analysis.classifier import SegmentScorer, top_k
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


def score(output: str, batch_size: int = 2) -> tuple[SegmentScorer, Echo, list[int]]:
    model = Echo()
    scorer = SegmentScorer(model, output=output, num_classes=4, batch_size=batch_size)  # type: ignore[arg-type]
    batches: list[int] = []
    scorer.add(0, [view([0.7, 0.1, 0.1, 0.1]), view([0.5, 0.3, 0.1, 0.1])], batches.append)
    scorer.add(1, [view([0.1, 0.1, 0.1, 0.7])], batches.append)
    scorer.flush(batches.append)
    return scorer, model, batches


def test_probability_outputs_are_not_softmaxed_again() -> None:
    scorer, model, batches = score("probabilities")
    assert torch.allclose(scorer.mean(0), torch.tensor([0.6, 0.2, 0.1, 0.1], dtype=torch.float64))
    assert torch.allclose(scorer.mean(1), torch.tensor([0.1, 0.1, 0.1, 0.7], dtype=torch.float64))
    assert model.calls == [2, 1] and batches == [2, 1]


def test_logits_are_softmaxed_per_view_then_averaged() -> None:
    scorer, _, _ = score("logits", batch_size=8)
    a = torch.softmax(torch.tensor([0.7, 0.1, 0.1, 0.1]), 0)
    b = torch.softmax(torch.tensor([0.5, 0.3, 0.1, 0.1]), 0)
    assert torch.allclose(scorer.mean(0).float(), (a + b) / 2)
    assert scorer.mean(0).sum().item() == pytest.approx(1.0)


def test_class_count_must_match_the_labelset() -> None:
    scorer = SegmentScorer(Echo(), output="logits", num_classes=3, batch_size=1)
    with pytest.raises(WeightsInvalid, match="4 classes"):
        scorer.add(0, [view([1, 2, 3, 4])], lambda n: None)


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
