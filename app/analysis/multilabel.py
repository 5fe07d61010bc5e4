"""Summary and runs of a multi-label model, where a segment keeps a *set* of labels.

A label is kept in a segment when its own probability is at least ``min_score`` (and
``top_k`` did not cap it away): that is ``SegmentResult.labels``. From those sets:

- runs: per label, consecutive segments keeping it, merged; runs of different labels
  may overlap in time (someone walks while talking);
- summary: per label kept anywhere, its maximum score over all segments and its
  ``share``: the time covered by the segments keeping it over the time covered by all
  segments. Both are unions of the segments' spans, so overlapping segments (stride
  shorter than the segment) count each instant once and a share never exceeds 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from app.analysis.results import Label, Run, SegmentResult

if TYPE_CHECKING:
    import numpy as np


def covered_seconds(spans: Iterable[tuple[float, float]]) -> float:
    """Length of the union of ``[start, end)`` spans."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total


def label_summary(
    segments: Sequence[SegmentResult], scores: Mapping[int, np.ndarray], labels: tuple[str, ...]
) -> tuple[Label, ...]:
    """Each label kept in some segment: its maximum score and its share of the analysed
    time; best maximum first (ties: class id)."""
    analysed = covered_seconds((s.start, s.end) for s in segments)
    kept: dict[int, list[tuple[float, float]]] = {}
    for seg in segments:
        for label in seg.labels:
            kept.setdefault(label.class_id, []).append((seg.start, seg.end))
    out = []
    for class_id, spans in kept.items():
        best = max(float(scores[s.index][class_id]) for s in segments)
        share = covered_seconds(spans) / analysed if analysed > 0 else 0.0
        out.append(Label(labels[class_id], class_id, best, share=min(1.0, share)))
    return tuple(sorted(out, key=lambda x: (-x.score, x.class_id)))


def label_runs(segments: Sequence[SegmentResult]) -> tuple[Run, ...]:
    """Per label, consecutive segments keeping it, merged (score: the mean of its scores
    there); ordered by start, then class id."""
    done: list[Run] = []
    open_runs: dict[int, tuple[Run, list[float]]] = {}
    for seg in sorted(segments, key=lambda s: (s.start, s.index)):
        here = {label.class_id for label in seg.labels}
        for class_id in [c for c in open_runs if c not in here]:
            done.append(open_runs.pop(class_id)[0])
        for label in seg.labels:
            first, scores = open_runs.get(label.class_id, (None, []))
            scores.append(label.score)
            start = first.start if first is not None else float(seg.start)
            end = max(first.end, float(seg.end)) if first is not None else float(seg.end)
            run = Run(label.label, label.class_id, start, end, float(sum(scores) / len(scores)))
            open_runs[label.class_id] = (run, scores)
    done += [run for run, _ in open_runs.values()]
    return tuple(sorted(done, key=lambda r: (r.start, r.class_id)))
