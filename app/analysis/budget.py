"""A job's wall-clock budget: how long one analysis may hold a worker before it fails ``timeout``.

The decoder's allowance (``decode_sandbox``) bounds only the time spent waiting for frames;
inference is not in it, so a small upload asking for many views once held a worker for most
of an hour. The budget bounds the whole job, from ``open_task`` to its result::

    seconds = (base + per_video_second x seconds analysed x (model cost x clips x crops
                                                            + shot cost))
              x jobs in flight

The model cost is the catalog's GFLOPs per view over X3D-S's 3 (at least 1); a model the
catalog gives no GFLOPs for counts as ``UNKNOWN_COST`` (75 GFLOPs, the heavy end of the zoo),
so the guess errs on the generous side. Shot detection (``detect_shots``) reads every frame
of the video, whatever the segments, so its cost is per frame: ``SHOT_COST`` counts one video
second of it at ``SHOT_VIDEO_FPS`` (60, the high end of common frame rates) over the
detector's measured ``SHOT_FRAMES_PER_SECOND`` on one thread, in X3D-S views: 3 views' worth
per video second, the analysed seconds standing for the video (the detector reads on to the
stream's end, which the options do not give). A worker holding several jobs at once shares its
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


def model_cost(spec: ModelSpec) -> float:
    """How many times X3D-S's work one view of this model is (at least 1)."""
    if spec.gflops is None:
        return UNKNOWN_COST
    return max(1.0, spec.gflops / REFERENCE_GFLOPS)


def shot_cost(used: dict[str, Any]) -> float:
    """What shot detection adds per video second, in X3D-S views (0 when the job did not ask)."""
    return SHOT_COST if used.get("detect_shots") else 0.0


def _views(used: dict[str, Any]) -> int:
    return int(used["clips_per_segment"]) * int(used["crops"])


def _shots_note(used: dict[str, Any]) -> str:
    return f" + shot detection {SHOT_COST:.3g}" if used.get("detect_shots") else ""


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
        work = model_cost(spec) * _views(used) + shot_cost(used)
        return (self.base_seconds + self.per_video_second * analysed * work) * self.jobs_in_flight

    def deadline(self, spec: ModelSpec, used: dict[str, Any], started: float) -> Deadline:
        """The job's deadline on the ``time.monotonic`` clock, for a job that began at ``started``."""
        analysed = max(0.0, float(used["end"]) - float(used["start"]))
        seconds = self.seconds(spec, used)
        formula = (
            f"({self.base_seconds:g} s + {self.per_video_second:g} s x {analysed:.1f} s analysed"
            f" x (model cost {model_cost(spec):.3g} x {used['clips_per_segment']} clips"
            f" x {used['crops']} crops{_shots_note(used)})) x {self.jobs_in_flight} jobs in flight"
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
