"""A worker that holds several claimed jobs at once; their clips share inference batches.

Short jobs waste a one-job worker twice: the model idles while a job's decoder starts and
scans, and batches stay small. Here up to ``worker_jobs_in_flight`` jobs are in flight,
each with its own lease keeper, progress and partial results, and one scheduler
(``app.analysis.pipeline``) batches views of the same model across them. A job ends as it
would in ``Worker`` (same recording of success, failure, release); the others go on, and
a free place is filled by the next claim.

A due annotated-video render (``RenderRunner.run_if_due``) runs in this loop, between two
batches: the jobs in flight pause for the render's duration (their lease keepers go on
renewing, so they are not claimed elsewhere; their progress and batches wait).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.errors import WorkerStopping
from app.worker.lease import LeaseKeeper
from app.worker.runner import Worker, job_options

if TYPE_CHECKING:
    from app.analysis.engine import Analyzer
    from app.analysis.pipeline import AnalysisTask, Scheduler
    from app.analysis.results import AnalysisResult, SegmentResult
    from app.domain import Lease
    from app.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class _Run:
    keeper: LeaseKeeper[Lease]
    task: AnalysisTask
    started: float
    extra: dict[str, str]
    finished: list[SegmentResult] = field(default_factory=list)


class MultiJobWorker(Worker):
    """``Worker`` with ``settings.worker_jobs_in_flight`` jobs in flight (the analyzer must be
    the engine's ``Analyzer``: it opens tasks and makes the scheduler)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.active: list[_Run] = []
        self._scheduler: Scheduler | None = None
        self._next_claim = 0.0
        self._next_housekeeping = 0.0

    @property
    def engine(self) -> Analyzer:
        engine: Analyzer = self.analyzer  # type: ignore[assignment]
        return engine

    @property
    def scheduler(self) -> Scheduler:
        if self._scheduler is None:
            self._scheduler = self.engine.scheduler()
        return self._scheduler

    def run(self) -> None:
        try:
            super().run()
        finally:
            self._stop_all()

    def run_once(self) -> bool:
        """Top up the jobs in flight, then run one batch (or wait briefly for clips).
        Returns False when nothing is in flight and the queue was empty."""
        now = time.monotonic()
        if now >= self._next_housekeeping:
            self._next_housekeeping = now + self.settings.poll_interval
            self._housekeeping()
        if self.stopping.is_set():
            self._stop_all()
            return False
        self._claim(now)
        if not self.active:  # no analysis in flight: follow-up work (annotated videos)
            return self.renders.run_once() if self.renders is not None else False
        self.scheduler.step([run.task for run in self.active], idle_wait=self.settings.poll_interval)
        for run in [r for r in self.active if r.task.ended]:
            self._finish(run)
            self.refill_spares()
            if self.renders is not None:
                self.renders.job_finished()
        if self.renders is not None:
            self.renders.run_if_due()  # synchronous: the jobs in flight pause while it renders
        return True

    def drain(self) -> None:
        """Run until nothing is in flight and the queue is empty (tests, one-shot runs)."""
        while self.run_once():
            pass

    def _claim(self, now: float) -> None:
        limit = self.settings.worker_jobs_in_flight
        if len(self.active) >= limit or (self.active and now < self._next_claim and not self.wake.is_set()):
            return
        self.wake.clear()
        while len(self.active) < limit:
            lease = self.store.claim(self.worker_id, self.settings.lease_seconds)
            if lease is None:
                self._next_claim = now + self.settings.poll_interval
                return
            self._start(lease)

    def _start(self, lease: Lease) -> None:
        job = lease.job
        extra = {"job_id": job.id, "worker_id": self.worker_id}
        log.info("job claimed (attempt %d/%d)", job.attempts, job.max_attempts, extra=extra)
        started = time.monotonic()
        keeper = LeaseKeeper(
            self.store.renew, lease, self.settings.lease_seconds, job_id=lease.job.id
        ).__enter__()
        finished: list[SegmentResult] = []
        try:
            task = self.engine.open_task(
                self._video_path(job),
                job.model,
                job_options(job),
                self._progress_callback(keeper, finished, extra),
                finished.extend,
            )
        except Exception as exc:
            error = exc

            def reraise() -> AnalysisResult:
                raise error

            outcome = self._settle(keeper, started, extra, reraise)
            keeper.__exit__(None, None, None)
            self.metrics.record_job(job.model, outcome, time.monotonic() - started)
            return
        self.active.append(_Run(keeper, task, started, extra, finished))

    def _finish(self, run: _Run) -> None:
        self.active.remove(run)
        task = run.task

        def outcome_of_task() -> AnalysisResult:
            if task.error is not None:
                raise task.error
            assert task.result is not None
            return task.result

        try:
            outcome = self._settle(run.keeper, run.started, run.extra, outcome_of_task)
        finally:
            task.close()
            run.keeper.__exit__(None, None, None)
        self.metrics.record_job(run.keeper.lease.job.model, outcome, time.monotonic() - run.started)

    def _stop_all(self) -> None:
        """Release every job in flight (worker stopping)."""
        for run in list(self.active):
            run.task.fail(WorkerStopping())
            self._finish(run)


def worker_class(settings: Settings) -> type[Worker]:
    """``MultiJobWorker`` when settings allow more than one job in flight, else ``Worker``."""
    return MultiJobWorker if settings.worker_jobs_in_flight > 1 else Worker
