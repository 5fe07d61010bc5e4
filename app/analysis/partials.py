"""Partial results: segments whose every view has been scored, reported once each as
batches land (the events stream shows them before the job ends)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from app.analysis.assemble import segment_results
from app.analysis.results import SegmentResult

if TYPE_CHECKING:
    from app.analysis.classifier import SegmentSums
    from app.analysis.plan import SamplingPlan, SegmentPlan

SegmentsSink = Callable[[tuple[SegmentResult, ...]], None]
"""Gets each batch's newly finished segments, equal to those of the final result."""


class PartialReporter:
    """Call ``update(sums)`` after each batch; ``sink`` gets the newly finished segments
    as the final result will hold them (same top-k, same frame times)."""

    def __init__(
        self,
        plan: SamplingPlan,
        labels: tuple[str, ...],
        options: Mapping[str, Any],
        used_times: dict[int, list[float]],
        sink: SegmentsSink,
    ) -> None:
        self.plan, self.labels, self.options = plan, labels, options
        self.used_times, self.sink = used_times, sink
        self.views: dict[int, int] = {}
        for clip in plan.clips:
            self.views[clip.segment] = self.views.get(clip.segment, 0) + int(options["crops"])
        self.pending = [seg for seg in plan.segments if seg.index in self.views]

    def extend(self, segments: tuple[SegmentPlan, ...]) -> None:
        """Segments planned later (``segmentation=shots``)."""
        self.plan = replace(self.plan, segments=self.plan.segments + segments)
        for seg in segments:
            self.views[seg.index] = len(seg.clips) * int(self.options["crops"])
        self.pending.extend(seg for seg in segments if seg.clips)

    def update(self, sums: SegmentSums) -> None:
        ready = [s for s in self.pending if sums.counts.get(s.index, 0) >= self.views[s.index]]
        if not ready:
            return
        self.pending = [s for s in self.pending if s not in ready]
        means = {s.index: sums.combined(s.index) for s in ready}
        part = replace(self.plan, segments=tuple(ready))
        self.sink(segment_results(part, means, self.used_times, self.labels, self.options))
