"""From per-segment probabilities (views combined) to the typed results document.

A segment's labels are the top-k of its scores at or above ``min_score`` (for a
multi-label model: every label at or above it, best first, capped at k). Classifier:
the summary is the top-k of the segments' scores averaged (weighted by their lengths),
and runs merge consecutive segments (ordered by start) sharing a top-1 label.
Multi-label: per-label summary and runs (``multilabel.py``). Scores become plain Python
floats here, so the results hold no arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from app.analysis.classifier import top_k
from app.analysis.multilabel import label_runs, label_summary
from app.analysis.results import (
    AnalysisResult,
    Label,
    Provenance,
    Run,
    SegmentResult,
    Timings,
    VideoInfo,
    preprocessing_hash,
    versions,
)

if TYPE_CHECKING:
    from app.analysis.backend_choice import Choice
    from app.analysis.decode import DecodeStats
    from app.analysis.plan import SamplingPlan
    from app.analysis.scan import VideoScan
    from app.analysis.spec import ModelSpec


def segment_results(
    plan: SamplingPlan,
    means: Mapping[int, np.ndarray],
    used_times: Mapping[int, list[float]],
    labels: tuple[str, ...],
    options: Mapping[str, Any],
) -> tuple[SegmentResult, ...]:
    """One entry per planned segment; frame times are those of the frames actually decoded."""
    k, min_score = options["top_k"], options["min_score"]
    out = []
    for seg in plan.segments:
        times = used_times.get(seg.index) or [seg.first_frame_time, seg.last_frame_time]
        out.append(
            SegmentResult(
                index=seg.index,
                start=float(seg.start),
                end=float(seg.end),
                first_frame_time=float(min(times)),
                last_frame_time=float(max(times)),
                labels=top_k(means[seg.index], labels, k, min_score),
            )
        )
    return tuple(out)


def summary(
    segments: Sequence[SegmentResult],
    means: Mapping[int, np.ndarray],
    labels: tuple[str, ...],
    *,
    k: int,
    min_score: float,
) -> tuple[Label, ...]:
    """Top-k of the mean of the segments' probability vectors, each weighted by its length
    (chosen ranges differ in length; equal fixed segments weigh the same)."""
    stacked = np.stack([np.asarray(means[s.index], dtype=np.float64) for s in segments])
    weights = np.array([max(s.end - s.start, 0.0) for s in segments], dtype=np.float64)
    if float(weights.sum()) <= 0:
        weights = np.ones_like(weights)
    mean = (stacked * weights[:, None]).sum(axis=0) / weights.sum()
    return top_k(mean, labels, k, min_score)


def runs(
    segments: Sequence[SegmentResult],
    means: Mapping[int, np.ndarray],
    labels: tuple[str, ...],
    *,
    min_score: float,
) -> tuple[Run, ...]:
    """Consecutive segments (by start: chosen ranges may come in any order) sharing a top-1
    label, merged; a top-1 below ``min_score`` breaks a run."""
    merged: list[Run] = []
    scores: list[float] = []
    extending = False
    for seg in sorted(segments, key=lambda s: (s.start, s.index)):
        best = top_k(means[seg.index], labels, 1)[0]
        if best.score < min_score:
            extending = False
            continue
        if extending and best.class_id == merged[-1].class_id:
            scores.append(best.score)
            merged[-1] = replace(
                merged[-1], end=max(merged[-1].end, float(seg.end)), score=float(sum(scores) / len(scores))
            )
        else:
            scores = [best.score]
            merged.append(Run(best.label, best.class_id, float(seg.start), float(seg.end), best.score))
        extending = True
    return tuple(merged)


def video_info(scan: VideoScan, stats: DecodeStats, *, fast_decode: bool) -> VideoInfo:
    return VideoInfo(
        duration=scan.duration,
        width=scan.width,
        height=scan.height,
        fps=scan.fps,
        codec=scan.codec,
        pix_fmt=scan.pix_fmt,
        frames=len(scan.frame_times),
        rotation=stats.rotation or 0,
        decoded_frames=stats.decoded,
        substituted_frames=stats.substituted,
        decode_errors=stats.errors,
        fast_decode=fast_decode,
    )


def provenance(
    spec: ModelSpec, options: dict[str, Any], weights_sha256: str, backend: Choice, timings: Timings
) -> Provenance:
    return Provenance(
        model=spec.name,
        weights_file=spec.weights,
        weights_sha256=weights_sha256,
        preprocessing_hash=preprocessing_hash(spec, options),
        versions=versions(),
        backend=backend.name,
        backend_reason=backend.reason,
        timings=timings,
    )


def analysis_result(
    spec: ModelSpec,
    labels: tuple[str, ...],
    options: dict[str, Any],
    *,
    video: VideoInfo,
    segments: tuple[SegmentResult, ...],
    means: Mapping[int, np.ndarray],
    provenance: Provenance,
) -> AnalysisResult:
    """The whole document: the segments plus their summary and runs."""
    k, min_score = options["top_k"], options["min_score"]
    multilabel = spec.task == "multilabel"
    return AnalysisResult(
        model=spec.name,
        labelset=spec.labelset,
        task=spec.task,
        options=options,
        video=video,
        segments=segments,
        summary=(
            label_summary(segments, means, labels)
            if multilabel
            else summary(segments, means, labels, k=k, min_score=min_score)
        ),
        runs=label_runs(segments) if multilabel else runs(segments, means, labels, min_score=min_score),
        provenance=provenance,
    )


def scoring_options(spec: ModelSpec, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with ``min_score`` filled in where the job left it unset: the model's
    default (0.5 for a multi-label model, 0.0 for a classifier unless its entry says)."""
    if options.get("min_score") is None:
        return {**options, "min_score": spec.min_score}
    return options
