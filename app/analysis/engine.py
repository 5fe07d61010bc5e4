"""The worker's entry point: one video + one model + options -> the JSON results payload.

scan (demux-only frame times) -> plan -> one decode pass -> transforms -> batched model ->
per-segment probabilities -> segments, summary, runs, provenance. ``on_progress`` runs
after every inference batch; whatever it raises (cancellation, shutdown) propagates as is.

With ``decode_in_subprocess`` the scan and decode run in a sandboxed child
(``sandbox.py``) ahead of inference and ``pipeline.py`` batches the clips; ``open_task``
starts one job's analysis for a scheduler shared by several jobs (``app/worker/multi.py``).
Without it, everything runs in this process, one stage after the other (the simple path).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
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
    from app.analysis.backends import Choice
    from app.analysis.decode import DecodedClip, DecodeStats
    from app.analysis.pipeline import AnalysisTask, Scheduler
    from app.analysis.plan import SamplingPlan
    from app.analysis.sandbox import DecodeSandbox, SandboxLimits
    from app.analysis.spec import ModelSpec
    from app.analysis.transforms import ClipTransform
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
        backend_default: str = "auto",
        decode_in_subprocess: bool = False,
        sandbox: SandboxLimits | None = None,
        batch_max_wait: float = 0.0,
        fast_decode_min_seconds: float = 0.0,
        progress_interval: float = 0.2,
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
        self.backends = Backends(
            models_dir,
            backends or {},
            default=backend_default,
            threads=torch_threads,
            batch=batch_size,
            device=self.device,
        )
        self.decode_in_subprocess, self.sandbox = decode_in_subprocess, sandbox
        self.batch_max_wait, self.fast_decode_min_seconds = batch_max_wait, fast_decode_min_seconds
        self.progress_interval = progress_interval
        self._adopted: list[DecodeSandbox] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> Analyzer:
        from app.analysis.sandbox import SandboxLimits

        return cls(
            models_dir=settings.models_dir,
            allowed_formats=settings.allowed_format_list,
            device=settings.device,
            batch_size=settings.batch_size,
            torch_threads=settings.torch_threads,
            decode_threads=settings.decode_threads,
            model_cache_bytes=settings.model_cache_bytes,
            limits=MediaLimits.from_settings(settings),
            backends=settings.backends,
            backend_default=settings.backend_default,
            decode_in_subprocess=settings.decode_in_subprocess,
            sandbox=SandboxLimits.from_settings(settings),
            batch_max_wait=settings.batch_max_wait_seconds,
            fast_decode_min_seconds=settings.fast_decode_min_seconds,
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

        if self.decode_in_subprocess:
            task = self.open_task(video_path, model_name, options, on_progress, on_segments)
            try:
                self.scheduler().run([task])
            finally:
                task.close()
            if task.error is not None:
                raise task.error
            assert task.result is not None
            return task.result
        spec = load_catalog(self.models_dir).get(model_name)
        labels = read_labels(spec)
        loaded = self.loader.load(spec)
        scan = scan_video(video_path, self.allowed_formats, self.limits)
        used = effective_options(spec, options, scan.duration)
        plan = plan_for(spec, options, scan.frame_times, scan.duration)
        stats = DecodeStats()
        model, backend = self.backends.resolve(loaded)
        means, used_times = self._score(
            video_path,
            spec,
            model,
            len(labels),
            scan,
            plan,
            used,
            stats,
            on_progress,
            on_segments,
        )
        return self._payload(spec, labels, used, scan, stats, plan, means, used_times, loaded.sha256, backend)

    def _payload(
        self,
        spec: ModelSpec,
        labels: tuple[str, ...],
        used: dict[str, Any],
        scan: VideoScan,
        stats: DecodeStats,
        plan: SamplingPlan,
        means: dict[int, Any],
        used_times: dict[int, list[float]],
        weights_sha256: str,
        backend: Choice,
        fast_decode: bool = False,
    ) -> dict[str, Any]:
        video = scan.to_dict() | {
            "rotation": stats.rotation or 0,
            "decoded_frames": stats.decoded,
            "substituted_frames": stats.substituted,
            "decode_errors": stats.errors,
        }
        if fast_decode:
            video["fast_decode"] = True
        payload = results.payload(
            spec,
            labels,
            used,
            video,
            results.segment_results(plan, means, used_times, labels, used),
            weights_sha256,
        )
        payload["provenance"]["backend"] = backend.name
        payload["provenance"]["backend_reason"] = backend.reason
        return payload

    def adopt(self, sandbox: DecodeSandbox) -> None:
        """A decoder started early (``python -m app analyze`` starts it before importing
        torch); the next ``open_task`` for the same video and geometry uses it."""
        self._adopted.append(sandbox)

    def scheduler(self) -> Scheduler:
        """A batcher for tasks of this analyzer (one per ``analyze``, or one per multi-job worker)."""
        from app.analysis.pipeline import Scheduler

        return Scheduler(batch_size=self.batch_size, device=self.device, max_wait=self.batch_max_wait)

    def open_task(
        self,
        video_path: Path,
        model_name: str,
        options: JobOptions,
        on_progress: Callable[[float], None] | None = None,
        on_segments: SegmentsSink | None = None,
    ) -> AnalysisTask:
        """Start one job's analysis: the decoder starts first (sandboxed unless
        ``decode_in_subprocess`` is off) and scans while the model loads. Run the task with
        a ``Scheduler``; close it in any case."""
        from app.analysis.decode import DecodeStats
        from app.analysis.pipeline import AnalysisTask, ClipSource, InProcessClips, SandboxClips
        from app.analysis.prep import FramePrep
        from app.analysis.sandbox import DecodeSandbox, SandboxLimits
        from app.analysis.transforms import ClipTransform

        spec = load_catalog(self.models_dir).get(model_name)
        labels = read_labels(spec)
        source: ClipSource
        if self.decode_in_subprocess:
            prep = FramePrep.for_spec(spec, options.crops)
            limits = self.sandbox or SandboxLimits()
            key = DecodeSandbox.key_for(
                video_path, self.allowed_formats, self.limits, prep, spec.frames, self.decode_threads, limits
            )
            early = [s for s in self._adopted if s.key == key]
            self._adopted = [s for s in self._adopted if s.key != key]
            for extra in early[1:]:
                extra.close()
            sandbox = early[0] if early else None
            if sandbox is None:
                sandbox = DecodeSandbox(
                    video_path,
                    self.allowed_formats,
                    self.limits,
                    prep,
                    spec.frames,
                    threads=self.decode_threads,
                    limits=limits,
                )
            try:
                loaded = self.loader.load(spec)
                model, backend = self.backends.resolve(loaded)
                scan = sandbox.scan()
                plan = plan_for(spec, options, scan.frame_times, scan.duration)
                fast = self._fast_decode(scan)
                sandbox.decode(plan, skip_nonref=fast)
            except BaseException:
                sandbox.close()
                raise
            source = SandboxClips(sandbox, spec.alpha)
        else:
            loaded = self.loader.load(spec)
            model, backend = self.backends.resolve(loaded)
            scan = scan_video(video_path, self.allowed_formats, self.limits)
            plan = plan_for(spec, options, scan.frame_times, scan.duration)
            fast = self._fast_decode(scan)
            transform = ClipTransform.for_spec(spec, options.crops)
            stats = DecodeStats()
            clips = self._decode_in_process(video_path, scan, plan, transform, stats, skip_nonref=fast)
            source = InProcessClips(clips, transform, stats)
        used = effective_options(spec, options, scan.duration)

        def finish(task: AnalysisTask) -> dict[str, Any]:
            stats = task.source.stats
            if stats is None:
                raise RuntimeError("the decoder finished without its statistics")
            means = {seg.index: task.scorer.mean(seg.index) for seg in plan.segments}
            return self._payload(
                spec, labels, used, scan, stats, plan, means, task.used_times, loaded.sha256, backend, fast
            )

        return AnalysisTask(
            model=model,
            spec=spec,
            labels=labels,
            plan=plan,
            used=used,
            source=source,
            device=self.device,
            finish=finish,
            on_progress=on_progress,
            on_segments=on_segments,
            progress_interval=self.progress_interval,
        )

    def _decode_in_process(
        self,
        video_path: Path,
        scan: VideoScan,
        plan: SamplingPlan,
        transform: ClipTransform,
        stats: DecodeStats,
        skip_nonref: bool = False,
    ) -> Generator[DecodedClip[Any], None, None]:
        """Decode the plan's clips in this process (no sandbox), with this engine's threads and limits."""
        from app.analysis.decode import decode_clips

        return decode_clips(
            video_path,
            self.allowed_formats,
            scan,
            plan,
            transform.prepare_frame,
            threads=self.decode_threads,
            stats=stats,
            limits=self.limits,
            skip_nonref=skip_nonref,
        )

    def _fast_decode(self, scan: VideoScan) -> bool:
        return 0 < self.fast_decode_min_seconds <= scan.duration

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

        clips = self._decode_in_process(video_path, scan, plan, transform, stats)
        try:
            for clip in clips:
                used_times.setdefault(clip.plan.segment, []).extend(clip.times)
                scorer.add(clip.plan.segment, transform.views(clip.frames), on_batch)
            scorer.flush(on_batch)
        finally:
            clips.close()
        return {seg.index: scorer.mean(seg.index) for seg in plan.segments}, used_times
