"""A detection job (``task: detection``): keyframes -> people -> actions -> tracks.

One decode pass (the sandboxed child, or this process) delivers, per keyframe, the AVA clip
around it and the keyframe itself upright (``detection_plan``, ``detection_prep``). Batches
of ``batch_size`` keyframes then go through the person stage (the caller's ``boxes``, or
the entry's ``person_detector`` on the keyframes only, kept at ``person_min_score``) and the
detection model (``detection_scoring``); the tracker links the people at the end.

The scheduler (``pipeline.py``) runs a ``DetectionTask`` beside classification tasks: each
``maybe_finish`` call handles one batch of keyframes and returns, so other jobs' batches
interleave; deadlines, progress and cancellation work as for any task.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app.analysis.assemble import provenance, scoring_options, video_info
from app.analysis.backend_choice import Choice
from app.analysis.catalog import read_labels
from app.analysis.decode import DecodeStats
from app.analysis.detection_decode import Clips, scan_for_detection, start_detection_decode
from app.analysis.detection_detector import filter_people, load_person_detector
from app.analysis.detection_plan import KeyframePlan, plan_for_detection_scan
from app.analysis.detection_results import DetectionOutput, PersonDetection
from app.analysis.detection_scoring import KeyframeInput, kept_labels, label_ids, score_people, summary_labels
from app.analysis.detection_types import Box, PersonDetector
from app.analysis.pipeline import AnalysisTask
from app.analysis.plan import effective_options
from app.analysis.results import AnalysisResult, Timings
from app.analysis.scan import VideoScan
from app.analysis.tracker import assign_tracks, build_tracks
from app.errors import InvalidOptions
from app.options import JobOptions

if TYPE_CHECKING:
    from app.analysis.budget import JobBudget
    from app.analysis.catalog import Catalog
    from app.analysis.decode_sandbox import SandboxLimits
    from app.analysis.limits import MediaLimits
    from app.analysis.loader import ModelLoader
    from app.analysis.spec import ModelSpec

BACKEND = Choice("torch", "detection models run in PyTorch (their box input is not exported)")


@dataclass(frozen=True)
class DetectionEnv:
    """What a detection task needs from the engine (``Analyzer``)."""

    catalog: Catalog
    loader: ModelLoader
    device: str
    allowed_formats: tuple[str, ...]
    limits: MediaLimits
    sandbox: SandboxLimits | None
    """None: decode in this process."""
    decode_threads: int
    batch_size: int
    max_keyframes: int
    budget: JobBudget | None

    @classmethod
    def of(cls, engine: Any) -> DetectionEnv:
        """From an ``Analyzer`` (typed loosely: the engine imports this module, not the reverse)."""
        from app.analysis.catalog import load_catalog
        from app.analysis.decode_sandbox import SandboxLimits

        return cls(
            catalog=load_catalog(engine.models_dir),
            loader=engine.loader,
            device=engine.device,
            allowed_formats=tuple(engine.allowed_formats),
            limits=engine.limits,
            sandbox=(engine.sandbox or SandboxLimits()) if engine.decode_in_subprocess else None,
            decode_threads=engine.decode_threads,
            batch_size=engine.batch_size,
            max_keyframes=engine.max_segments,
            budget=engine.budget,
        )


@dataclass
class _Keyframe:
    index: int
    people: list[tuple[Box, float | None]]
    scores: np.ndarray | None = None


class _Pending:
    """The scheduler's view of the source: never waited on (each step makes progress)."""

    exhausted = False
    stats: DecodeStats | None = None

    def take(self) -> None:
        return None

    def waitables(self) -> list[Any]:
        return []

    def charge(self, seconds: float) -> None:
        pass

    def close(self) -> None:
        pass


class DetectionTask(AnalysisTask):
    """One detection job in flight (the scheduler's task interface; no views to batch)."""

    def __init__(
        self,
        *,
        env: DetectionEnv,
        spec: ModelSpec,
        used: dict[str, Any],
        scan: VideoScan,
        keyframes: KeyframePlan,
        clips: Clips,
        closer: Callable[[], DecodeStats | None],
        detector: tuple[str, PersonDetector] | None,
        caller_boxes: list[list[Box]] | None,
        model: Any,
        sha256: str,
        on_progress: Callable[[float], None] | None,
    ) -> None:
        self.env, self.spec, self.used, self.scan, self.keyframes = env, spec, used, scan, keyframes
        self.module, self._clips, self._closer, self._sha256 = model, clips, closer, sha256
        self._detector, self._caller_boxes = detector, caller_boxes
        self.labels = read_labels(spec)
        self.ids = label_ids(spec, len(self.labels))
        self.on_progress = on_progress
        self.deadline = env.budget.deadline(spec, used, time.monotonic()) if env.budget else None
        self.explainer, self.partials = None, None
        self.key = (id(self), -1)
        self.pending: deque[Any] = deque()
        self.pending_since = 0.0
        self._source = _Pending()
        self.source = self._source
        self.error: BaseException | None = None
        self.result: AnalysisResult | None = None
        self.total, self.done = len(keyframes), 0
        self.decode_seconds: float | None = 0.0
        self.inference_seconds = 0.0
        self._found: list[_Keyframe] = []
        self._stats: DecodeStats | None = None

    def pull(self, room: int) -> None:
        """Nothing to hand the scheduler: the work happens in ``maybe_finish``."""

    def maybe_finish(self) -> None:
        """One batch of keyframes; the result once every keyframe is done."""
        if self.ended:
            return
        if self.done < self.total:
            self._batch()
            if self.on_progress is not None:
                self.on_progress(self.done / self.total)
            if self.deadline is not None:
                self.deadline.check(time.monotonic())
        if self.done >= self.total:
            next(self._clips, None)  # the decoder's end (and its statistics) after the last clip
            self._stats = self._closer()
            self._source.exhausted = True
            self.result = self._document()

    def _batch(self) -> None:
        started = time.monotonic()
        batch: list[tuple[int, np.ndarray, np.ndarray]] = []
        while len(batch) < self.env.batch_size and self.done + len(batch) < self.total:
            item = next(self._clips, None)
            if item is None:
                raise RuntimeError(
                    f"the decoder delivered {self.done + len(batch)} of {self.total} keyframes"
                )
            batch.append(item)
        assert self.decode_seconds is not None
        self.decode_seconds += time.monotonic() - started
        started = time.monotonic()
        people = self._people([index for index, _, _ in batch], [key for _, _, key in batch])
        inputs = [
            KeyframeInput(clip, tuple(box for box, _ in found))
            for (_, clip, _), found in zip(batch, people, strict=True)
        ]
        scores = score_people(self.module, self.spec, inputs, self.env.device)
        for (index, _, _), found, score in zip(batch, people, scores, strict=True):
            self._found.append(_Keyframe(index, found, score))
        self.inference_seconds += time.monotonic() - started
        self.done += len(batch)

    def _people(self, indices: list[int], keys: list[np.ndarray]) -> list[list[tuple[Box, float | None]]]:
        if self._detector is None:
            assert self._caller_boxes is not None, "a detection job has a detector or boxes"
            return [[(box, None) for box in self._caller_boxes[i]] for i in indices]
        found = self._detector[1].detect(keys)
        minimum = float(self.used["person_min_score"])
        return [[(p.box, p.score) for p in filter_people(f, minimum)] for f in found]

    def _document(self) -> AnalysisResult:
        ordered = sorted(self._found, key=lambda k: k.index)
        tracks = assign_tracks([[box for box, _ in k.people] for k in ordered])
        detections: list[PersonDetection] = []
        min_score, top_k = float(self.used["min_score"]), int(self.used["top_k"])
        for keyframe, ids in zip(ordered, tracks, strict=True):
            time_ = self.keyframes.times[keyframe.index]
            for n, ((box, person_score), track_id) in enumerate(zip(keyframe.people, ids, strict=True)):
                assert keyframe.scores is not None
                labels = kept_labels(
                    keyframe.scores[n], self.labels, self.ids, min_score=min_score, top_k=top_k
                )
                detections.append(PersonDetection(time_, box, person_score, track_id, labels))
        stats = self._stats or DecodeStats()
        timings = Timings(decode_seconds=self.decode_seconds or 0.0, inference_seconds=self.inference_seconds)
        source = "boxes" if self._detector is None else self._detector[0]
        return AnalysisResult(
            model=self.spec.name,
            labelset=self.spec.labelset,
            options=self.used,
            video=video_info(self.scan, stats, fast_decode=False),
            segments=(),
            summary=summary_labels([d.labels for d in detections], top_k),
            runs=(),
            provenance=provenance(self.spec, self.used, self._sha256, BACKEND, timings),
            task="detection",
            detection=DetectionOutput(
                tuple(detections), build_tracks(detections), self.keyframes.times, source
            ),
        )

    def fail(self, exc: BaseException) -> None:
        if self.error is None and self.result is None:
            self.error = exc
        self.close()

    def close(self) -> None:
        self._source.exhausted = True
        self._closer()

    def record(self, segments: list[int], probs: Any) -> None:
        raise RuntimeError("a detection task has no views to score")

    @property
    def timings(self) -> Timings:
        return Timings(decode_seconds=self.decode_seconds or 0.0, inference_seconds=self.inference_seconds)


def open_detection_task(
    env: DetectionEnv,
    video_path: Path,
    spec: ModelSpec,
    options: JobOptions,
    on_progress: Callable[[float], None] | None = None,
) -> DetectionTask:
    """Scan, plan the keyframes, load the models and start the decoder; errors raise here."""
    if spec.task != "detection":
        raise InvalidOptions(
            f"model {spec.name!r} is a {spec.task.replace('_', ' ')}: name a detection model"
        )
    if options.boxes is None and spec.person_detector is None:
        raise InvalidOptions(f"model {spec.name!r} has no person detector: give the people as boxes")
    scan = scan_for_detection(video_path, env.allowed_formats, env.limits, env.sandbox)
    keyframes = plan_for_detection_scan(spec, options, scan, limit=env.max_keyframes)
    used = scoring_options(spec, effective_options(spec, options, scan.duration))
    caller = [list(entry.boxes) for entry in options.boxes] if options.boxes is not None else None
    detector = None
    if options.boxes is None and spec.person_detector is not None:
        found, _ = load_person_detector(env.loader, env.catalog.get(spec.person_detector))
        detector = (spec.person_detector, found)
    loaded = env.loader.load(spec)
    clips, closer = start_detection_decode(
        video_path, env.allowed_formats, env.limits, env.sandbox, env.decode_threads, spec, scan, keyframes
    )
    return DetectionTask(
        env=env,
        spec=spec,
        used=used,
        scan=scan,
        keyframes=keyframes,
        clips=clips,
        closer=closer,
        detector=detector,
        caller_boxes=caller,
        model=loaded.module,
        sha256=loaded.sha256,
        on_progress=on_progress,
    )
