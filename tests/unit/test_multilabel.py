"""Scoring by task: sigmoid per label, threshold then top-k, per-label runs that overlap,
summary maxima and time shares, max view-combine, and a classifier's results unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from app.analysis.assemble import analysis_result, scoring_options
from app.analysis.classifier import SegmentSums, predict, top_k
from app.analysis.multilabel import covered_seconds, label_runs, label_summary
from app.analysis.results import Label, Provenance, SegmentResult, Timings, VideoInfo
from app.analysis.spec import ModelSpec
from app.options import JobOptions

LABELS = ("walk", "talk", "wave", "sit")


class Echo(nn.Module):
    """Outputs the first voxel row of each clip: the test chooses the model's output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, 0, 0, :4]


def view(values: list[float]) -> torch.Tensor:
    out = torch.zeros(3, 1, 1, 4)
    out[0, 0, 0] = torch.tensor(values)
    return out


def spec(task: str = "multilabel", **extra: Any) -> ModelSpec:
    return ModelSpec(
        name="m", builder="b", weights="w.pyth", labels_path=Path("labels.json"), task=task, **extra
    )


def seg(
    index: int, start: float, end: float, scores: list[float], min_score: float = 0.5, k: int = 5
) -> tuple[SegmentResult, torch.Tensor]:
    """A segment as ``segment_results`` makes it (labels: ``top_k`` of its scores), and its scores."""
    probs = torch.tensor(scores, dtype=torch.float64)
    return SegmentResult(index, start, end, start, end - 0.1, top_k(probs, LABELS, k, min_score)), probs


def test_multilabel_logits_get_an_independent_sigmoid_per_label() -> None:
    logits = [2.0, -1.0, 0.5, 0.0]
    probs = predict(
        Echo(), [view(logits)], output="logits", num_classes=4, device=torch.device("cpu"), task="multilabel"
    )
    assert np.allclose(probs[0], torch.sigmoid(torch.tensor(logits, dtype=torch.float64)), atol=1e-6)
    assert float(probs[0].sum()) > 1.0  # not a distribution: every label on its own
    given = predict(
        Echo(),
        [view([0.9, 0.8, 0.1, 0.0])],
        output="probabilities",
        num_classes=4,
        device=torch.device("cpu"),
        task="multilabel",
    )
    assert np.allclose(given[0], torch.tensor([0.9, 0.8, 0.1, 0.0]))


def test_classifier_logits_still_get_one_softmax() -> None:
    probs = predict(
        Echo(), [view([2.0, -1.0, 0.5, 0.0])], output="logits", num_classes=4, device=torch.device("cpu")
    )
    assert float(probs[0].sum()) == pytest.approx(1.0)
    assert np.allclose(probs[0], torch.softmax(torch.tensor([2.0, -1.0, 0.5, 0.0]), 0))


def test_views_combine_by_mean_or_by_max() -> None:
    rows = torch.tensor([[0.9, 0.1, 0.2, 0.0], [0.1, 0.7, 0.2, 0.4]], dtype=torch.float64)
    mean, top = SegmentSums("mean"), SegmentSums("max")
    for sums in (mean, top):
        sums.accumulate([3], rows[:1])
        sums.accumulate([3], rows[1:])
    assert np.allclose(mean.combined(3), torch.tensor([0.5, 0.4, 0.2, 0.2], dtype=torch.float64))
    assert np.allclose(top.combined(3), torch.tensor([0.9, 0.7, 0.2, 0.4], dtype=torch.float64))
    assert top.counts == {3: 2}


def test_threshold_keeps_every_label_then_top_k_caps_the_count() -> None:
    probs = torch.tensor([0.55, 0.97, 0.5, 0.49], dtype=torch.float64)
    assert [x.label for x in top_k(probs, LABELS, 5, 0.5)] == ["talk", "walk", "wave"]
    assert [x.label for x in top_k(probs, LABELS, 2, 0.5)] == ["talk", "walk"]
    assert [x.label for x in top_k(probs, LABELS, 5, 0.96)] == ["talk"]


def test_min_score_defaults_to_the_models() -> None:
    assert JobOptions().min_score is None
    assert scoring_options(spec("multilabel"), {"min_score": None})["min_score"] == 0.5
    assert scoring_options(spec("classification"), {"min_score": None})["min_score"] == 0.0
    assert scoring_options(spec("multilabel", default_min_score=0.3), {"min_score": None})["min_score"] == 0.3
    assert scoring_options(spec("multilabel"), {"min_score": 0.2})["min_score"] == 0.2


def test_runs_are_per_label_and_overlap() -> None:
    """walk 0-3 s, talk 1-4 s (overlapping walk), walk again 5-6 s after a gap."""
    table = [
        [0.9, 0.1, 0.0, 0.0],
        [0.8, 0.7, 0.0, 0.0],
        [0.6, 0.9, 0.0, 0.0],
        [0.1, 0.6, 0.0, 0.0],
        [0.2, 0.2, 0.0, 0.0],
        [0.7, 0.1, 0.0, 0.0],
    ]
    segments = [seg(i, float(i), float(i + 1), row)[0] for i, row in enumerate(table)]
    runs = [(r.label, r.start, r.end, round(r.score, 6)) for r in label_runs(segments)]
    assert runs == [
        ("walk", 0.0, 3.0, round((0.9 + 0.8 + 0.6) / 3, 6)),
        ("talk", 1.0, 4.0, round((0.7 + 0.9 + 0.6) / 3, 6)),
        ("walk", 5.0, 6.0, 0.7),
    ]


def test_summary_gives_each_labels_maximum_and_share_of_the_time() -> None:
    """2 s segments every 1 s (overlapping): a label's time is the union of its segments."""
    rows = [[0.9, 0.2, 0.0, 0.0], [0.6, 0.8, 0.0, 0.0], [0.3, 0.7, 0.0, 0.0], [0.2, 0.1, 0.0, 0.0]]
    pairs = [seg(i, float(i), float(i + 2), row) for i, row in enumerate(rows)]
    segments = [s for s, _ in pairs]
    scores = {s.index: p for s, p in pairs}
    summary = label_summary(segments, scores, LABELS)  # analysed: 0-5 s
    assert [(x.label, x.score) for x in summary] == [("walk", 0.9), ("talk", 0.8)]
    assert summary[0].share == pytest.approx(3 / 5)  # segments 0-2 and 1-3: 0-3 s
    assert summary[1].share == pytest.approx(3 / 5)  # 1-3 and 2-4: 1-4 s
    assert covered_seconds([(0, 2), (1, 3), (5, 6), (5.5, 5.7)]) == pytest.approx(4.0)


def document(task: str, rows: list[list[float]]) -> dict[str, Any]:
    """A whole results document assembled as the engine does (one 1 s segment per row)."""
    model = spec(task)
    options = scoring_options(model, {"top_k": 3, "min_score": None, "crops": 1})
    pairs = [
        seg(i, float(i), float(i + 1), r, options["min_score"], options["top_k"]) for i, r in enumerate(rows)
    ]
    provenance = Provenance("m", "w.pyth", "0" * 64, "h", {}, "pytorch", "r", Timings(0.0, 0.0))
    video = VideoInfo(float(len(rows)), 64, 64, 30.0, "h264", "yuv420p", 30 * len(rows), 0, 0, 0, 0)
    result = analysis_result(
        model,
        LABELS,
        options,
        video=video,
        segments=tuple(s for s, _ in pairs),
        means={s.index: p for s, p in pairs},
        provenance=provenance,
    )
    return result.to_dict()


def test_a_classifiers_document_is_unchanged() -> None:
    rows = [[0.7, 0.2, 0.06, 0.04], [0.6, 0.3, 0.06, 0.04], [0.1, 0.8, 0.06, 0.04]]
    doc = document("classification", rows)
    assert doc["task"] == "classification" and doc["options"]["min_score"] == 0.0
    assert [x["label"] for x in doc["segments"][0]["labels"]] == ["walk", "talk", "wave"]
    assert doc["summary"][0] == {"label": "walk", "class_id": 0, "score": pytest.approx(1.4 / 3)}
    assert [(r["label"], r["start"], r["end"]) for r in doc["runs"]] == [
        ("walk", 0.0, 2.0),
        ("talk", 2.0, 3.0),
    ]


def test_a_multilabel_document() -> None:
    rows = [[0.9, 0.1, 0.6, 0.0], [0.9, 0.8, 0.7, 0.55], [0.2, 0.9, 0.1, 0.0]]
    doc = document("multilabel", rows)
    assert doc["task"] == "multilabel" and doc["options"]["min_score"] == 0.5
    kept = [[x["label"] for x in s["labels"]] for s in doc["segments"]]
    assert kept == [["walk", "wave"], ["walk", "talk", "wave"], ["talk"]]  # top_k 3 capped "sit"
    assert [(x["label"], x["score"], x["share"]) for x in doc["summary"]] == [
        ("walk", 0.9, pytest.approx(2 / 3)),
        ("talk", 0.9, pytest.approx(2 / 3)),
        ("wave", 0.7, pytest.approx(2 / 3)),
    ]
    assert [(r["label"], r["start"], r["end"]) for r in doc["runs"]] == [
        ("walk", 0.0, 2.0),
        ("wave", 0.0, 2.0),
        ("talk", 1.0, 3.0),
    ]


def test_label_share_only_in_the_json_when_set() -> None:
    assert Label("a", 0, 0.5).to_dict() == {"label": "a", "class_id": 0, "score": 0.5}
    assert Label("a", 0, 0.5, share=0.25).to_dict()["share"] == 0.25
