"""The worker's entry point: one video + one model + options -> the JSON results payload.

scan (demux-only frame times) -> plan -> one decode pass -> transforms -> batched model ->
per-segment probabilities -> segments, summary, runs, provenance. ``on_progress`` runs
after every inference batch; whatever it raises (cancellation, shutdown) propagates as is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.analysis import results
from app.analysis.catalog import load_catalog, read_labels
from app.analysis.plan import effective_options, plan_for
from app.analysis.scan import scan_video
from app.options import JobOptions

if TYPE_CHECKING:
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
    ) -> None:
        import torch

        from app.analysis.loader import ModelLoader

        if torch.get_num_threads() != torch_threads:
            torch.set_num_threads(torch_threads)
        self.models_dir = models_dir
        self.allowed_formats = list(allowed_formats)
        self.device = resolve_device(device)
        self.batch_size, self.decode_threads = batch_size, decode_threads
        self.loader = ModelLoader(models_dir, device=self.device, cache_bytes=model_cache_bytes)

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
        )

    def analyze(
        self,
        video_path: Path,
        model_name: str,
        options: JobOptions,
        on_progress: Callable[[float], None] | None = None,
    ) -> dict[str, Any]:
        from app.analysis.classifier import SegmentScorer
        from app.analysis.decode import DecodeStats, decode_clips
        from app.analysis.transforms import ClipTransform

        spec = load_catalog(self.models_dir).get(model_name)
        labels = read_labels(spec)
        loaded = self.loader.load(spec)
        scan = scan_video(video_path, self.allowed_formats)
        used = effective_options(spec, options, scan.duration)
        plan = plan_for(spec, options, scan.frame_times, scan.duration)
        transform = ClipTransform.for_spec(spec, used["crops"])
        scorer = SegmentScorer(
            loaded.module,
            output=spec.output,
            num_classes=len(labels),
            device=self.device,
            batch_size=self.batch_size,
        )
        total, done = len(plan.clips) * used["crops"], 0

        def on_batch(count: int) -> None:
            nonlocal done
            done += count
            if on_progress is not None:
                on_progress(done / total)

        stats = DecodeStats()
        used_times: dict[int, list[float]] = {}
        clips = decode_clips(
            video_path,
            self.allowed_formats,
            scan,
            plan,
            transform.prepare_frame,
            threads=self.decode_threads,
            stats=stats,
        )
        try:
            for clip in clips:
                used_times.setdefault(clip.plan.segment, []).extend(clip.times)
                scorer.add(clip.plan.segment, transform.views(clip.frames), on_batch)
            scorer.flush(on_batch)
        finally:
            clips.close()
        k, min_score = used["top_k"], used["min_score"]
        means = {seg.index: scorer.mean(seg.index) for seg in plan.segments}
        segments = results.segment_results(plan, means, used_times, labels, k=k, min_score=min_score)
        video = scan.to_dict() | {
            "rotation": stats.rotation or 0,
            "decoded_frames": stats.decoded,
            "substituted_frames": stats.substituted,
            "decode_errors": stats.errors,
        }
        return {
            "model": spec.name,
            "labelset": spec.labelset,
            "options": used,
            "video": video,
            "segments": [s.to_dict() for s in segments],
            "summary": [
                label.to_dict() for label in results.summary(segments, labels, k=k, min_score=min_score)
            ],
            "runs": results.runs(segments, labels, min_score=min_score),
            "provenance": {
                "model": spec.name,
                "weights_file": spec.weights,
                "weights_sha256": loaded.sha256,
                "preprocessing_hash": results.preprocessing_hash(spec, used),
                "versions": results.versions(),
            },
        }
