"""A job's wall-clock budget: how long one analysis may hold a worker before it fails ``timeout``.

The decoder's allowance (``decode_sandbox``) bounds only the time spent waiting for frames;
inference is not in it, so a small upload asking for many views once held a worker for most
of an hour. The budget bounds the whole job, from ``open_task`` to its result::

    seconds = (base + per_video_second x seconds analysed x (model cost x (clips x crops
                                                                         + explain cost)
                                                            + shot cost))
              x jobs in flight

The model cost is the catalog's GFLOPs per view over X3D-S's 3 (at least 1); a model the
catalog gives no GFLOPs for counts as ``UNKNOWN_COST`` (75 GFLOPs, the heavy end of the zoo),
so the guess errs on the generous side. Shot detection (``detect_shots``) reads every frame
of the video, whatever the segments (``segmentation=shots`` too: it is counted as fixed windows
of the default length with ``detect_shots``), so its cost is per frame: ``SHOT_COST`` counts one video
second of it at ``SHOT_VIDEO_FPS`` (60, the high end of common frame rates) over the
detector's measured ``SHOT_FRAMES_PER_SECOND`` on one thread, in X3D-S views: 3 views' worth
per video second, the analysed seconds standing for the video (the detector reads on to the
stream's end, which the options do not give). Explaining (``explain``) runs one clip per
segment forward again and backward per explained label (``explain_task``): ``EXPLAIN_COST``
views of the model per label, 1 + 2 (a backward costs about 1-2 forwards), up to
``EXPLAIN_LABELS`` labels of a multi-label model, counted like the clips per video second
(measured: a demo-model job took x1.16-1.23 its time). A worker holding several jobs at once shares its
model between them, so each gets that many times the budget. Defaults are tens of times
what a CPU needs: the budget is a safety net against runaway jobs, not a service level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.errors import JobTimeout

if TYPE_CHECKING:
    from app.analysis.spec import ModelSpec
    from app.settings import Settings

REFERENCE_GFLOPS = 3.0
"""About X3D-S's cost per view: a model at or below it has cost 1."""
UNKNOWN_COST = 25.0
SHOT_FRAMES_PER_SECOND = 20.0
"""TransNetV2 (PyTorch, f32) on one CPU thread of a busy 2-vCPU machine (measured 19/s; about
50/s on an idle one): 48x27 frames through the network per second."""
SHOT_VIDEO_FPS = 60.0
"""Frames per second of video the budget assumes for the detector (it reads every frame)."""
SHOT_COST = SHOT_VIDEO_FPS / SHOT_FRAMES_PER_SECOND
"""Shot detection per video second, in X3D-S views (one budget ``per_video_second`` each)."""
EXPLAIN_FORWARD = 1.0
EXPLAIN_BACKWARD = 2.0
"""A backward pass, in forwards of the same clip: 1-2 (the high end)."""
EXPLAIN_LABELS = 3
"""Labels explained per segment of a multi-label model (``explain_task.MULTILABEL_MAX``)."""


def model_cost(spec: ModelSpec) -> float:
    """How many times X3D-S's work one view of this model is (at least 1)."""
    if spec.gflops is None:
        return UNKNOWN_COST
    return max(1.0, spec.gflops / REFERENCE_GFLOPS)


def shot_cost(used: dict[str, Any]) -> float:
    """What shot detection adds per video second, in X3D-S views (0 when the job did not ask)."""
    return SHOT_COST if _finds_shots(used) else 0.0


def _finds_shots(used: dict[str, Any]) -> bool:
    return bool(used.get("detect_shots")) or used.get("segmentation") == "shots"


def explain_cost(spec: ModelSpec, used: dict[str, Any]) -> float:
    """What explaining adds per segment, in views of the model (0 when the job did not ask):
    the explained clip's forward again and a backward per label."""
    if not used.get("explain"):
        return 0.0
    labels = EXPLAIN_LABELS if spec.task == "multilabel" else 1
    return EXPLAIN_FORWARD + EXPLAIN_BACKWARD * labels


def _views(used: dict[str, Any]) -> int:
    """Views per segment; with shots and no ``clips_per_segment``, 1: a segment then gets one
    clip per model clip of its length, as fixed windows of the default length do."""
    return int(used["clips_per_segment"] or 1) * int(used["crops"])


def _views_note(spec: ModelSpec, used: dict[str, Any]) -> str:
    views = f"{used['clips_per_segment']} clips x {used['crops']} crops"
    explain = explain_cost(spec, used)
    return f"({views} + explain {explain:g})" if explain else views


def _shots_note(used: dict[str, Any]) -> str:
    return f" + shot detection {SHOT_COST:.3g}" if _finds_shots(used) else ""


@dataclass(frozen=True)
class JobBudget:
    base_seconds: float
    per_video_second: float
    jobs_in_flight: int = 1

    @classmethod
    def from_settings(cls, settings: Settings) -> JobBudget:
        return cls(
            base_seconds=settings.job_timeout_base_seconds,
            per_video_second=settings.job_timeout_per_video_second,
            jobs_in_flight=settings.worker_jobs_in_flight,
        )

    def seconds(self, spec: ModelSpec, used: dict[str, Any]) -> float:
        """The budget of one job, given its effective options (``plan.effective_options``)."""
        analysed = max(0.0, float(used["end"]) - float(used["start"]))
        work = model_cost(spec) * (_views(used) + explain_cost(spec, used)) + shot_cost(used)
        return (self.base_seconds + self.per_video_second * analysed * work) * self.jobs_in_flight

    def deadline(self, spec: ModelSpec, used: dict[str, Any], started: float) -> Deadline:
        """The job's deadline on the ``time.monotonic`` clock, for a job that began at ``started``."""
        analysed = max(0.0, float(used["end"]) - float(used["start"]))
        seconds = self.seconds(spec, used)
        formula = (
            f"({self.base_seconds:g} s + {self.per_video_second:g} s x {analysed:.1f} s analysed"
            f" x (model cost {model_cost(spec):.3g} x {_views_note(spec, used)}{_shots_note(used)}))"
            f" x {self.jobs_in_flight} jobs in flight"
        )
        return Deadline(started, started + seconds, f"{seconds:.1f} s = {formula}")


@dataclass(frozen=True)
class Deadline:
    started: float
    at: float
    """``time.monotonic()`` past which the job is out of time."""
    budget: str
    """The budget with the numbers it came from, for the failed job's message."""

    def check(self, now: float) -> None:
        """Raise JobTimeout once ``now`` is past the deadline."""
        if now > self.at:
            raise JobTimeout(
                f"the job was stopped after {now - self.started:.1f} s: its wall-clock budget is "
                f"{self.budget} (settings job_timeout_base_seconds, job_timeout_per_video_second)"
            )

    def remaining(self, now: float) -> float:
        return max(0.0, self.at - now)
