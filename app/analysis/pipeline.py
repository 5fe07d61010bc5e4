"""Decode ahead, batch across segments and jobs, infer, stream results per batch.

An ``AnalysisTask`` is one job's analysis: its model, plan, clip source
(``clip_sources.py``), per-segment sums and callbacks. The ``Scheduler`` runs tasks
together (one, for ``Analyzer.analyze``; a few, for a worker holding several jobs): it
takes the clips their sources have ready, groups views by model and input shape, runs one
batch (full; or partial once its oldest view waited ``max_wait`` or no more can come for
that model), hands every row back to its task (finished segments, progress), and blocks
only when no batch can run, then on all the decode children at once. Sandboxed sources
decode ahead in their own processes, bounded by their shared-memory rings, so decoding and
inference overlap while memory stays flat.

A task's callbacks may raise (cancellation, lease lost, worker stopping): that task ends
with the exception in ``error`` and its decoder is stopped; the others go on. So does a
task past its ``deadline`` (``budget.py``): it ends with ``JobTimeout`` at the next step,
and no wait outlasts the nearest deadline.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.connection import wait
from typing import TYPE_CHECKING, Any

import numpy as np

from app.analysis.classifier import SegmentSums, predict
from app.analysis.clip_views import ClipInput
from app.analysis.partials import PartialReporter, SegmentsSink
from app.analysis.results import AnalysisResult, Timings

if TYPE_CHECKING:
    from app.analysis.budget import Deadline
    from app.analysis.clip_sources import ClipSource
    from app.analysis.explain_task import SegmentExplainer
    from app.analysis.plan import SamplingPlan, SegmentPlan
    from app.analysis.runners import Runner
    from app.analysis.spec import ModelSpec


class AnalysisTask:
    """One job's analysis in flight; ``result`` or ``error`` once it ended. ``finish``
    builds the result once every view is scored (``timings`` are known by then)."""

    def __init__(
        self,
        *,
        model: Runner,
        spec: ModelSpec,
        labels: tuple[str, ...],
        plan: SamplingPlan,
        used: dict[str, Any],
        source: ClipSource,
        finish: Callable[[AnalysisTask], AnalysisResult],
        on_progress: Callable[[float], None] | None = None,
        on_segments: SegmentsSink | None = None,
        progress_interval: float = 0.0,
        deadline: Deadline | None = None,
        explainer: SegmentExplainer | None = None,
    ) -> None:
        self.explainer = explainer
        """Explains each segment once scored (``explain``); None: not asked."""
        self.model, self.spec, self.plan, self.used, self.source = model, spec, plan, used, source
        self.deadline = deadline
        crop = spec.crop_geometry(used["crops"])[1]
        self.key = (id(model), crop)
        """Views of tasks with equal keys can share a batch."""
        self.num_classes = len(labels)
        self.sums = SegmentSums(spec.view_combine)
        self.total = len(plan.clips) * int(used["crops"])
        self.done = 0
        self.pending: deque[tuple[int, ClipInput]] = deque()
        self.pending_since = 0.0
        self.used_times: dict[int, list[float]] = {}
        self.partials = (
            PartialReporter(plan, labels, used, self.used_times, on_segments)
            if on_segments is not None
            else None
        )
        self.on_progress, self.progress_interval = on_progress, progress_interval
        self.covered = 1.0
        """The share of the video planned so far (below 1 while shots are still coming, ``grow``)."""
        self._finish = finish
        self._reported = float("-inf")
        self.error: BaseException | None = None
        self.result: AnalysisResult | None = None
        self._started = time.monotonic()
        self.decode_seconds: float | None = None
        """Wall time until the decoder delivered its last clip (it overlaps inference)."""
        self.inference_seconds = 0.0
        """This task's share (by views) of the forward passes it took part in."""

    @property
    def ended(self) -> bool:
        return self.error is not None or self.result is not None

    def pull(self, room: int) -> None:
        """Take ready clips until ``room`` views are pending."""
        while len(self.pending) < room and not self.source.exhausted:
            clip = self.source.take()
            if clip is None:
                return
            if self.source.exhausted and self.decode_seconds is None:
                self.decode_seconds = time.monotonic() - self._started
            if not self.pending:
                self.pending_since = time.monotonic()
            self.used_times.setdefault(clip.segment, []).extend(clip.times)
            if self.explainer is not None:
                self.explainer.offer(clip.segment, clip.times, clip.views)
            self.pending.extend((clip.segment, view) for view in clip.views)

    def record(self, segments: list[int], probs: np.ndarray) -> None:
        self.sums.accumulate(segments, probs)
        self.done += len(segments)
        if self.explainer is not None:
            for segment in dict.fromkeys(segments):
                self.explainer.scored(segment, self.sums.counts[segment], self.sums.combined(segment))
        if self.partials is not None:
            self.partials.update(self.sums)
        now = time.monotonic()
        if self.on_progress is not None and (
            self.done >= self.total or now - self._reported >= self.progress_interval
        ):
            self._reported = now
            self.on_progress(self.done / self.total * self.covered)

    def grow(self, segments: tuple[SegmentPlan, ...], final: bool) -> None:
        """More segments, before any of their clips (``segmentation=shots``: a shot became
        final); ``final``: the plan is complete."""
        self.plan = replace(self.plan, segments=self.plan.segments + segments)
        self.total += sum(len(s.clips) for s in segments) * int(self.used["crops"])
        if self.partials is not None:
            self.partials.extend(segments)
        if self.explainer is not None:
            self.explainer.extend(segments)
        if final:
            self.covered = 1.0
        elif self.plan.segments:
            self.covered = min(1.0, self.plan.segments[-1].end / max(self.plan.duration, 1e-9))

    @property
    def timings(self) -> Timings:
        """Decode and inference seconds; the decode's are known once the source is exhausted."""
        if self.decode_seconds is None:
            raise RuntimeError("the decoder has not finished yet")
        return Timings(decode_seconds=self.decode_seconds, inference_seconds=self.inference_seconds)

    def maybe_finish(self) -> None:
        if self.ended or self.pending or not self.source.exhausted:
            return
        if self.done != self.total:
            raise RuntimeError(f"the decoder delivered {self.done} of {self.total} views")
        if self.decode_seconds is None:
            self.decode_seconds = time.monotonic() - self._started
        self.result = self._finish(self)
        self.source.close()

    def fail(self, exc: BaseException) -> None:
        if self.error is None and self.result is None:
            self.error = exc
        self.pending.clear()
        self.close()

    def close(self) -> None:
        """Stop the decoder and the explainer's thread (both idempotent)."""
        self.source.close()
        if self.explainer is not None:
            self.explainer.close()


_DEADLINE_SLACK = 0.01


def _guard(task: AnalysisTask, fn: Callable[..., object], *args: Any) -> None:
    try:
        fn(*args)
    except Exception as exc:
        task.fail(exc)


class Scheduler:
    """Batches views across tasks; ``step`` runs at most one batch, or waits for clips."""

    def __init__(self, *, batch_size: int, device: str = "cpu", max_wait: float = 0.0) -> None:
        self.batch_size, self.max_wait = batch_size, max_wait
        self.device = device
        self.batches = 0
        self.mixed = 0
        """Batches that held views of more than one task."""

    def run(self, tasks: list[AnalysisTask]) -> None:
        """Until every task ended (each with ``result`` or ``error``)."""
        while any(not t.ended for t in tasks):
            self.step(tasks, idle_wait=1.0)

    def step(self, tasks: list[AnalysisTask], idle_wait: float = 0.5) -> None:
        live = [t for t in tasks if not t.ended]
        now = time.monotonic()
        for task in live:
            if task.deadline is not None:
                _guard(task, task.deadline.check, now)
        live = [t for t in live if not t.ended]
        for task in live:
            _guard(task, task.pull, self.batch_size)
            _guard(task, task.maybe_finish)
        live = [t for t in live if not t.ended]
        if not live:
            return
        now = time.monotonic()
        chosen = self._choose(live, now)
        if chosen:
            self._run(chosen)
            return
        oldest = min((t.pending_since for t in live if t.pending), default=None)
        timeout = idle_wait if oldest is None else max(0.0, min(idle_wait, oldest + self.max_wait - now))
        for task in live:
            if task.deadline is not None:  # wake just past it
                timeout = min(timeout, task.deadline.remaining(now) + _DEADLINE_SLACK)
        self._wait(live, timeout)

    def _choose(self, live: list[AnalysisTask], now: float) -> list[AnalysisTask]:
        groups: dict[tuple[int, int], list[AnalysisTask]] = defaultdict(list)
        for task in live:
            groups[task.key].append(task)
        best: list[AnalysisTask] = []
        best_since = float("inf")
        for group in groups.values():
            waiting = [t for t in group if t.pending]
            if not waiting:
                continue
            since = min(t.pending_since for t in waiting)
            full = sum(len(t.pending) for t in waiting) >= self.batch_size
            more = any(not t.source.exhausted for t in group)
            if (full or not more or now - since >= self.max_wait) and since < best_since:
                best, best_since = sorted(waiting, key=lambda t: t.pending_since), since
        return best

    def _run(self, waiting: list[AnalysisTask]) -> None:
        views: list[ClipInput] = []
        owners: list[tuple[AnalysisTask, int]] = []
        for task in waiting:
            while task.pending and len(views) < self.batch_size:
                segment, view = task.pending.popleft()
                views.append(view)
                owners.append((task, segment))
            task.pending_since = time.monotonic()
        first = waiting[0]
        started = time.monotonic()
        try:
            probs = predict(
                first.model,
                views,
                output=first.spec.output,
                num_classes=first.num_classes,
                task=first.spec.task,
                device=self.device,
            )
        except Exception as exc:
            for task in waiting:
                task.fail(exc)
            return
        self.batches += 1
        elapsed = time.monotonic() - started
        rows: dict[int, tuple[AnalysisTask, list[int], list[int]]] = {}
        for i, (task, segment) in enumerate(owners):
            entry = rows.setdefault(id(task), (task, [], []))
            entry[1].append(segment)
            entry[2].append(i)
        self.mixed += len(rows) > 1
        for task, segments, index in rows.values():
            task.inference_seconds += elapsed * len(index) / len(views)
            _guard(task, task.record, segments, probs[index])

    def _wait(self, live: list[AnalysisTask], timeout: float) -> None:
        watched = [
            (t, t.source.waitables())
            for t in live
            if not t.source.exhausted and len(t.pending) < self.batch_size
        ]
        watched = [(t, w) for t, w in watched if w]
        if not watched or any(not t.source.waitables() and not t.source.exhausted for t in live):
            return
        started = time.monotonic()
        ready = set(wait([w for _, ws in watched for w in ws], timeout=timeout))
        elapsed = time.monotonic() - started
        for task, objects in watched:
            if not ready.intersection(objects):
                _guard(task, task.source.charge, elapsed)
