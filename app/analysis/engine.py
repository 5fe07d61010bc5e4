"""The worker's entry point: one video + one model + options -> an ``AnalysisResult``.

scan (frame times) -> plan -> one decode pass -> transforms -> batched model ->
per-segment probabilities -> segments, summary, runs, provenance (``assemble.py``).
``open_task`` starts one job's analysis; a ``Scheduler`` (``pipeline.py``) runs it, alone
(``analyze``) or beside other jobs' tasks (``app/worker/multi.py``). There is one path:
only the decoder differs, a sandboxed child (``decode_in_subprocess``, the default) or
this process (``InProcessClips``). ``on_progress`` runs after inference batches (at most
every ``progress_interval`` seconds, and at the end); whatever it raises (cancellation,
shutdown) propagates as is. With a ``budget`` (``budget.py``), a job still running when
its wall-clock budget is spent ends with ``JobTimeout``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from app.analysis.assemble import analysis_result, provenance, scoring_options, segment_results, video_info
from app.analysis.budget import JobBudget
from app.analysis.catalog import load_catalog, read_labels
from app.analysis.decode_split import children_for, split_plan
from app.analysis.limits import DEFAULT_LIMITS, MediaLimits
from app.analysis.partials import SegmentsSink
from app.analysis.plan import SamplingPlan, effective_options, plan_for_scan
from app.analysis.results import AnalysisResult
from app.analysis.sandbox_spares import SpareChildren
from app.analysis.scan import VideoScan, scan_video
from app.analysis.segmenting import MAX_SEGMENTS
from app.options import JobOptions, Segmentation

if TYPE_CHECKING:
    from app.analysis.clip_sources import ClipSource
    from app.analysis.decode_sandbox import DecodeSandbox, SandboxLimits
    from app.analysis.early_decode import EarlyDecode
    from app.analysis.pipeline import AnalysisTask, Scheduler
    from app.analysis.prep import FramePrep
    from app.analysis.shot_runner import ShotRunner
    from app.analysis.shot_source import InProcessShotClips, ShotPlanClips
    from app.analysis.spec import ModelSpec
    from app.settings import Settings


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


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
        decode_children: int = 0,
        model_cache_bytes: int = 2 * 1024**3,
        limits: MediaLimits | None = None,
        backends: Mapping[str, str] | None = None,
        backend_default: str = "auto",
        decode_in_subprocess: bool = True,
        sandbox: SandboxLimits | None = None,
        batch_max_wait: float = 0.0,
        fast_decode_min_seconds: float = 0.0,
        progress_interval: float = 0.2,
        budget: JobBudget | None = None,
        max_segments: int = MAX_SEGMENTS,
        auto_fetch: bool = False,
        import_torch: bool = True,
    ) -> None:
        """``import_torch=False`` (``analyze`` when an export will run): torch is imported, and
        its threads set, only if a torch module is built after all."""
        from app.analysis.backends import Backends
        from app.analysis.loader import ModelLoader

        if import_torch:
            import torch

            if torch.get_num_threads() != torch_threads:
                torch.set_num_threads(torch_threads)
        self.models_dir = models_dir
        self.allowed_formats = list(allowed_formats)
        self.device = resolve_device(device)
        self.batch_size, self.decode_threads = batch_size, decode_threads
        self.decode_children = children_for(decode_children)
        self.limits = limits or DEFAULT_LIMITS
        self.loader = ModelLoader(
            models_dir,
            device=self.device,
            cache_bytes=model_cache_bytes,
            auto_fetch=auto_fetch,
            torch_threads=torch_threads,
        )
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
        self.budget, self.max_segments = budget, max_segments
        self._adopted: list[DecodeSandbox] = []
        self._early: EarlyDecode | None = None
        self.spares = SpareChildren(self.decode_children) if decode_in_subprocess else None

    @classmethod
    def from_settings(cls, settings: Settings, *, import_torch: bool = True) -> Analyzer:
        from app.analysis.decode_sandbox import SandboxLimits
        from app.analysis.shot_backend import ShotBackend, configure

        configure(ShotBackend(settings.shot_backend))
        return cls(
            models_dir=settings.models_dir,
            allowed_formats=settings.allowed_format_list,
            device=settings.device,
            batch_size=settings.batch_size,
            torch_threads=settings.torch_threads,
            decode_threads=settings.decode_threads,
            decode_children=settings.decode_children,
            model_cache_bytes=settings.model_cache_bytes,
            limits=MediaLimits.from_settings(settings),
            backends=settings.backends,
            backend_default=settings.backend_default,
            decode_in_subprocess=settings.decode_in_subprocess,
            sandbox=SandboxLimits.from_settings(settings),
            batch_max_wait=settings.batch_max_wait_seconds,
            fast_decode_min_seconds=settings.fast_decode_min_seconds,
            budget=JobBudget.from_settings(settings),
            max_segments=settings.max_segments_per_job,
            auto_fetch=settings.auto_fetch,
            import_torch=import_torch,
        )

    def analyze(
        self,
        video_path: Path,
        model_name: str,
        options: JobOptions,
        on_progress: Callable[[float], None] | None = None,
        on_segments: SegmentsSink | None = None,
    ) -> AnalysisResult:
        """One job start to end: ``open_task`` run alone by a scheduler of its own.
        ``on_segments`` (optional) gets each batch's newly finished segments before
        ``on_progress`` gets the fraction done."""
        task = self.open_task(video_path, model_name, options, on_progress, on_segments)
        try:
            self.scheduler().run([task])
        finally:
            task.close()
        if task.error is not None:
            raise task.error
        assert task.result is not None, "the scheduler ends a task with a result or an error"
        return task.result

    def adopt(self, sandbox: DecodeSandbox) -> None:
        """A decoder started early (``python -m app analyze`` starts it before importing
        torch); the next ``open_task`` for the same video and geometry uses it."""
        self._adopted.append(sandbox)

    def adopt_early(self, early: EarlyDecode) -> None:
        """The CLI's decode, planned and started while torch imported (``early_decode``); used
        when the engine's own plan for that decoder is the same."""
        self.adopt(early.sandbox)
        self._early = early

    def refill_spares(self) -> None:
        """Start the decode children the next job takes (a worker calls it between jobs)."""
        if self.spares is not None:
            self.spares.refill()

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
        from app.analysis.backends import for_crops
        from app.analysis.pipeline import AnalysisTask

        started = time.monotonic()
        spec = load_catalog(self.models_dir).get(model_name)
        if spec.task in ("detection", "person_detector"):
            from app.analysis.detection_run import DetectionEnv, open_detection_task

            return open_detection_task(DetectionEnv.of(self), video_path, spec, options, on_progress)
        labels = read_labels(spec)
        sandbox = self._sandbox_for(video_path, spec, options) if self.decode_in_subprocess else None
        shots: ShotRunner | None = None
        feed: ShotPlanClips | InProcessShotClips | None = None
        try:
            if options.finds_shots:
                from app.analysis.shot_runner import ShotRunner
                from app.analysis.shot_stream import StreamingShots

                shots = StreamingShots() if options.segmentation is Segmentation.SHOTS else ShotRunner()
            loaded = self.loader.load(spec, build=False)
            model, backend = for_crops(loaded, *self.backends.resolve(loaded), options.crops)
            scan = sandbox.scan() if sandbox else scan_video(video_path, self.allowed_formats, self.limits)
            fast = self._fast_decode(scan) and shots is None  # shots need every frame anyway
            if options.segmentation is Segmentation.SHOTS:  # planned shot by shot
                from app.analysis.shot_source import start_shot_decode

                assert isinstance(shots, StreamingShots)
                plan = SamplingPlan(scan.frame_times, scan.duration, ())
                feed = start_shot_decode(sandbox, video_path, self, spec, options, scan, shots)
                source: ClipSource = feed
            else:
                plan = plan_for_scan(spec, options, scan, max_segments=self.max_segments)
                source = self._start_decode(sandbox, video_path, spec, options, scan, plan, fast, shots)
        except BaseException:
            if sandbox is not None:
                sandbox.close()
            if shots is not None:
                shots.close()
            raise
        used = scoring_options(spec, effective_options(spec, options, scan.duration))
        explainer = None
        if options.explain:
            from app.analysis.explain_task import SegmentExplainer

            explainer = SegmentExplainer(lambda: loaded.module, spec, labels, plan, used)
        deadline = self.budget.deadline(spec, used, started) if self.budget is not None else None

        def finish(task: AnalysisTask) -> AnalysisResult:
            stats = task.source.stats
            if stats is None:
                raise RuntimeError("the decoder finished without its statistics")
            means = {seg.index: task.sums.combined(seg.index) for seg in task.plan.segments}
            found = shots.finish(scan.duration) if shots is not None else None
            timings = task.timings
            if shots is not None:
                timings = replace(timings, shots_seconds=shots.seconds, shots_backend=shots.detector.backend)
            result = analysis_result(
                spec,
                labels,
                used,
                video=video_info(scan, stats, fast_decode=fast),
                segments=segment_results(task.plan, means, task.used_times, labels, used),
                means=means,
                provenance=provenance(spec, used, loaded.sha256, backend, timings),
            )
            if explainer is not None:
                result = replace(
                    result,
                    explanations=explainer.explanations(result.video),
                    provenance=replace(
                        result.provenance,
                        explain_backend="torch",
                        explain_note=explainer.note,
                        timings=replace(result.provenance.timings, explain_seconds=explainer.seconds),
                    ),
                )
            return result if found is None else replace(result, shots=found)

        task = AnalysisTask(
            model=model,
            spec=spec,
            labels=labels,
            plan=plan,
            used=used,
            source=source,
            finish=finish,
            on_progress=on_progress,
            on_segments=on_segments,
            progress_interval=self.progress_interval,
            deadline=deadline,
            explainer=explainer,
        )
        if feed is not None:
            feed.feed.on_plan = task.grow
        return task

    def _sandbox_for(self, video_path: Path, spec: ModelSpec, options: JobOptions) -> DecodeSandbox:
        """The adopted decoder for this video and geometry (started early), else a new one."""
        from app.analysis.decode_sandbox import DecodeSandbox, SandboxLimits
        from app.analysis.prep import FramePrep

        prep = FramePrep.for_spec(spec, options.crops)
        limits = self.sandbox or SandboxLimits()
        key = DecodeSandbox.key_for(
            video_path, self.allowed_formats, self.limits, prep, spec.frames, self.decode_threads, limits
        )
        early = [s for s in self._adopted if s.key == key]
        self._adopted = [s for s in self._adopted if s.key != key]
        for extra in early[1:]:
            extra.close()
        if early:
            if self._early is not None and self._early.sandbox is early[0]:
                self._early.wait()  # its thread is done with the child before this one talks to it
            return early[0]
        return self._new_sandbox(video_path, prep, spec.frames, limits)

    def _new_sandbox(
        self,
        video_path: Path,
        prep: FramePrep,
        frames: int,
        limits: SandboxLimits,
        scan: VideoScan | None = None,
    ) -> DecodeSandbox:
        from app.analysis.decode_sandbox import DecodeSandbox

        spare = self.spares.take() if self.spares is not None else None
        args = (video_path, self.allowed_formats, self.limits, prep, frames)
        return DecodeSandbox(*args, threads=self.decode_threads, limits=limits, scan=scan, spare=spare)

    def _start_decode(
        self,
        sandbox: DecodeSandbox | None,
        video_path: Path,
        spec: ModelSpec,
        options: JobOptions,
        scan: VideoScan,
        plan: SamplingPlan,
        fast: bool,
        shots: ShotRunner | None = None,
    ) -> ClipSource:
        """The plan's clips: from the sandboxed child (and ``decode_children - 1`` more, each
        decoding a part of the video from a keyframe on), or decoded here with this engine's
        threads and limits (``fast``: non-reference frames skipped). With ``shots``, one
        decoder decodes every frame and also feeds them, small, to the shot detector."""
        from app.analysis.clip_sources import SandboxClips, ShotClips, in_process_source

        if sandbox is not None and shots is not None:
            sandbox.decode(plan, on_frames=shots.add)
            return ShotClips(SandboxClips([sandbox], spec.alpha), shots)
        if sandbox is not None:
            return SandboxClips(self._children(sandbox, video_path, scan, plan, fast), spec.alpha)
        return in_process_source(
            video_path,
            self.allowed_formats,
            self.limits,
            scan,
            plan,
            spec,
            options.crops,
            self.decode_threads,
            fast,
            shots,
        )

    def _children(
        self, sandbox: DecodeSandbox, video_path: Path, scan: VideoScan, plan: SamplingPlan, fast: bool
    ) -> list[DecodeSandbox]:
        """The children decoding ``plan``: those the CLI's early start began on this very plan,
        else ``sandbox`` on the first part and a child (a spare if one waits) per other part."""
        from app.analysis.decode_parts import start_parts

        if self._early is not None and self._early.sandbox is sandbox:
            early, self._early = self._early, None
            started = early.take(plan, fast)
            if started is not None:
                return started
            if early.planned:  # it was given another plan (or failed on the way): a new first child
                sandbox = self._new_sandbox(video_path, sandbox.prep, sandbox.frames, sandbox.limits, scan)
        return start_parts(
            sandbox,
            video_path,
            self.allowed_formats,
            self.limits,
            threads=self.decode_threads,
            scan=scan,
            parts=split_plan(scan, plan, self.decode_children),
            fast=fast,
            spares=self.spares,
        )

    def _fast_decode(self, scan: VideoScan) -> bool:
        return 0 < self.fast_decode_min_seconds <= scan.duration
