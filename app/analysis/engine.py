"""The worker's entry point: one video + one model + options -> the JSON results payload.

scan (demux-only frame times) -> plan -> one decode pass -> transforms -> batched model ->
per-segment probabilities -> segments, summary, runs, provenance. ``on_progress`` runs
after every inference batch; whatever it raises (cancellation, shutdown) propagates as is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.analysis import results
from app.analysis.catalog import load_catalog, read_labels
from app.analysis.limits import DEFAULT_LIMITS, MediaLimits
from app.analysis.partials import PartialReporter, SegmentsSink
from app.analysis.plan import effective_options, plan_for
from app.analysis.scan import VideoScan, scan_video
from app.options import JobOptions

if TYPE_CHECKING:
    from app.analysis.decode import DecodeStats
    from app.analysis.plan import SamplingPlan
    from app.analysis.spec import ModelSpec
    from app.settings import Settings


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class Analyzer:
    """Holds the model cache; ``analyze`` may be called for many jobs, one at a time."""

    def __init__(
        self,
        *,
        models_dir: Path,
        allowed_formats: Sequence[str],
        device: str = "cpu",
        batch_size: int = 8,
        torch_threads: int = 1,
        decode_threads: int = 0,
        model_cache_bytes: int = 2 * 1024**3,
        limits: MediaLimits | None = None,
        backends: Mapping[str, str] | None = None,
    ) -> None:
        import torch

        from app.analysis.backends import Backends
        from app.analysis.loader import ModelLoader

        if torch.get_num_threads() != torch_threads:
            torch.set_num_threads(torch_threads)
        self.models_dir = models_dir
        self.allowed_formats = list(allowed_formats)
        self.device = resolve_device(device)
        self.batch_size, self.decode_threads = batch_size, decode_threads
        self.limits = limits or DEFAULT_LIMITS
        self.loader = ModelLoader(models_dir, device=self.device, cache_bytes=model_cache_bytes)
        self.backends = Backends(models_dir, backends or {}, threads=torch_threads, device=self.device)

    @classmethod
    def from_settings(cls, settings: Settings) -> Analyzer:
        return cls(
            models_dir=settings.models_dir,
            allowed_formats=[f.strip() for f in settings.allowed_formats.split(",") if f.strip()],
            device=settings.device,
            batch_size=settings.batch_size,
            torch_threads=settings.torch_threads,
            decode_threads=settings.decode_threads,
            model_cache_bytes=settings.model_cache_bytes,
            limits=MediaLimits.from_settings(settings),
            backends=settings.backends,
        )

    def analyze(
        self,
        video_path: Path,
        model_name: str,
        options: JobOptions,
        on_progress: Callable[[float], None] | None = None,
        on_segments: SegmentsSink | None = None,
    ) -> dict[str, Any]:
        """``on_segments`` (optional) gets each batch's newly finished segments, in the
        payload's segment shape, before ``on_progress`` gets the fraction done."""
        from app.analysis.decode import DecodeStats

        spec = load_catalog(self.models_dir).get(model_name)
        labels = read_labels(spec)
        loaded = self.loader.load(spec)
        scan = scan_video(video_path, self.allowed_formats, self.limits)
        used = effective_options(spec, options, scan.duration)
        plan = plan_for(spec, options, scan.frame_times, scan.duration)
        stats = DecodeStats()
        means, used_times = self._score(
            video_path,
            spec,
            self.backends.module(loaded),
            len(labels),
            scan,
            plan,
            used,
            stats,
            on_progress,
            on_segments,
        )
        video = scan.to_dict() | {
            "rotation": stats.rotation or 0,
            "decoded_frames": stats.decoded,
            "substituted_frames": stats.substituted,
            "decode_errors": stats.errors,
        }
        payload = results.payload(
            spec,
            labels,
            used,
            video,
            results.segment_results(plan, means, used_times, labels, used),
            loaded.sha256,
        )
        payload["provenance"]["backend"] = self.backends.name_for(spec.name)
        return payload

    def _score(
        self,
        video_path: Path,
        spec: ModelSpec,
        model: Any,
        num_classes: int,
        scan: VideoScan,
        plan: SamplingPlan,
        used: dict[str, Any],
        stats: DecodeStats,
        on_progress: Callable[[float], None] | None,
        on_segments: SegmentsSink | None = None,
    ) -> tuple[dict[int, Any], dict[int, list[float]]]:
        """Decode, transform and score every clip; returns per-segment mean probabilities and the
        presentation times of the frames each segment actually used."""
        from app.analysis.classifier import SegmentScorer
        from app.analysis.decode import decode_clips
        from app.analysis.transforms import ClipTransform

        transform = ClipTransform.for_spec(spec, used["crops"])
        scorer = SegmentScorer(
            model,
            output=spec.output,
            num_classes=num_classes,
            device=self.device,
            batch_size=self.batch_size,
        )
        total, done = len(plan.clips) * used["crops"], 0
        used_times: dict[int, list[float]] = {}
        partials = None
        if on_segments is not None:
            partials = PartialReporter(plan, read_labels(spec), used, used_times, on_segments)

        def on_batch(count: int) -> None:
            nonlocal done
            done += count
            if partials is not None:
                partials.update(scorer)
            if on_progress is not None:
                on_progress(done / total)

        clips = decode_clips(
            video_path,
            self.allowed_formats,
            scan,
            plan,
            transform.prepare_frame,
            threads=self.decode_threads,
            stats=stats,
            limits=self.limits,
        )
        try:
            for clip in clips:
                used_times.setdefault(clip.plan.segment, []).extend(clip.times)
                scorer.add(clip.plan.segment, transform.views(clip.frames), on_batch)
            scorer.flush(on_batch)
        finally:
            clips.close()
        return {seg.index: scorer.mean(seg.index) for seg in plan.segments}, used_times
