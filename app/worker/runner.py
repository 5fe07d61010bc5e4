"""Claim -> analyze -> save. Every outcome ends in a recorded state (or a released lease).
The worker is the results' JSON edge: typed results in, the job store's documents out."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from app.blobs import BlobStore
from app.domain import Job, JobError, JobStatus, Lease
from app.errors import (
    AnalysisError,
    InsufficientStorage,
    InvalidOptions,
    LeaseLost,
    ServiceError,
    Unavailable,
    WorkerStopping,
)
from app.metrics import Metrics
from app.options import JobOptions
from app.settings import Settings
from app.store.base import JobStore
from app.store.notify import start_listener
from app.store.renders import cached_renders, remove_cached
from app.webhooks.dispatcher import start_dispatcher
from app.worker.disk_full import DiskFullPause
from app.worker.lease import LeaseKeeper
from app.worker.renders import RenderRunner

if TYPE_CHECKING:
    from app.analysis.results import AnalysisResult, SegmentResult

log = logging.getLogger(__name__)

MAINTENANCE_EVERY_SECONDS = 300.0
TEMP_UPLOAD_MAX_AGE_SECONDS = 6 * 3600.0


class Analyzer(Protocol):
    def analyze(
        self,
        video_path: Path,
        model_name: str,
        options: JobOptions,
        on_progress: Callable[[float], None] | None = None,
        on_segments: Callable[[tuple[SegmentResult, ...]], None] | None = None,
    ) -> AnalysisResult: ...


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Worker:
    """One job at a time. ``analyzer_factory`` is called on the first job (it imports torch)."""

    def __init__(
        self,
        *,
        store: JobStore,
        blobs: BlobStore,
        settings: Settings,
        analyzer_factory: Callable[[], Analyzer],
        worker_id: str | None = None,
        wake: threading.Event | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store, self.blobs, self.settings = store, blobs, settings
        self._analyzer_factory = analyzer_factory
        self._analyzer: Analyzer | None = None
        self.worker_id = worker_id or default_worker_id()
        self.wake = wake or threading.Event()
        self.stopping = threading.Event()
        self._last_maintenance = 0.0
        self.metrics = metrics or Metrics()
        self.renders = RenderRunner.for_store(store, blobs, settings)

    @property
    def analyzer(self) -> Analyzer:
        if self._analyzer is None:
            self._analyzer = self._analyzer_factory()
        return self._analyzer

    def run(self) -> None:
        """Loop until ``stopping`` is set; the current job is finished or released first."""
        log.info("worker started", extra={"worker_id": self.worker_id})
        # PostgreSQL: NOTIFY wakes us when a job is queued; the slower poll only catches
        # expired leases and anything sent while the listener was reconnecting.
        listener = start_listener(self.settings.resolved_database_url, self.wake)
        webhooks = start_dispatcher(self.store, self.settings, self.stopping)
        idle = self.settings.listen_poll_interval if listener else self.settings.poll_interval
        backoff = idle
        disk_full = DiskFullPause(self.worker_id, self.settings.data_dir)
        try:
            while not self.stopping.is_set():
                try:
                    worked = self.run_once()
                    backoff = idle
                    disk_full.resumed()
                except InsufficientStorage as exc:  # not an outage: said once, retried slowly
                    worked, backoff = False, disk_full.paused(exc)
                except ServiceError as exc:  # database away: back off, then reconnect
                    log.warning("worker loop: %s", exc, extra={"worker_id": self.worker_id})
                    worked, backoff = False, min(backoff * 2, 10.0)
                if not worked:
                    self.wake.wait(backoff)
                    self.wake.clear()
        finally:
            if listener is not None:
                listener.stop()
            if webhooks is not None:
                webhooks.join(timeout=self.settings.webhook_timeout_seconds + 5)
        log.info("worker stopped", extra={"worker_id": self.worker_id})

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def run_once(self) -> bool:
        """Do one unit of work: a waiting annotated-video render when one is due (see
        ``RenderRunner.run_if_due``), else claim and process one job, else a waiting render.
        Returns False when there was nothing to do."""
        self._housekeeping()
        if self.renders is not None and self.renders.run_if_due():
            return True
        lease = self.store.claim(self.worker_id, self.settings.lease_seconds)
        if lease is None:  # no analysis waiting: follow-up work (annotated videos)
            return self.renders.run_once() if self.renders is not None else False
        self._process(lease)
        if self.renders is not None:
            self.renders.job_finished()
        return True

    def _housekeeping(self) -> None:
        for job_id in self.store.fail_exhausted():
            log.warning(
                "job failed: attempts exhausted", extra={"job_id": job_id, "worker_id": self.worker_id}
            )
        now = time.monotonic()
        if now - self._last_maintenance > MAINTENANCE_EVERY_SECONDS:
            self._last_maintenance = now
            self.store.maintenance()
            self.blobs.sweep_temp(TEMP_UPLOAD_MAX_AGE_SECONDS)
            self.sweep_storage()

    def sweep_storage(self) -> None:
        """Retention (``retention_days``): videos of jobs finished before the cutoff go,
        and with ``retention_delete_results`` the jobs and results too. Then orphans:
        stored videos older than ``orphan_grace_seconds`` that no job row refers to
        (an upload whose row insert failed, a crash between the two, retention leftovers), and
        annotated renders of jobs whose video is gone."""
        now = time.time()
        doomed: list[str] = []
        if self.settings.retention_days:
            cutoff = now - self.settings.retention_days * 86_400
            doomed += self.store.expire_videos(cutoff)
            if self.settings.retention_delete_results:
                doomed += self.store.purge_finished(cutoff)
        stored = self.blobs.keys()
        old = [key for key, mtime in stored if mtime < now - self.settings.orphan_grace_seconds]
        cached = cached_renders(self.settings)
        # The referenced keys are one query over every job: skipped when nothing could be an orphan.
        referenced = self.store.blob_keys() if old or cached else set()
        doomed += [key for key in old if key not in referenced]
        for key in doomed:
            try:
                self.blobs.delete(key)
            except ValueError:  # a key this blob store could never have written
                continue
        # Annotated renders and explanation pictures are copies of the video: they go with it
        # (a job's blob key is its id).
        renders = sorted(job_id for job_id in cached if job_id not in referenced)
        for job_id in renders:
            for path in cached[job_id]:
                remove_cached(path)
        if doomed or renders:
            log.info(
                "storage sweep: %d videos and %d annotated renders deleted",
                len(doomed),
                len(renders),
                extra={"worker_id": self.worker_id},
            )

    def _process(self, lease: Lease) -> None:
        job = lease.job
        extra = {"job_id": job.id, "worker_id": self.worker_id}
        log.info("job claimed (attempt %d/%d)", job.attempts, job.max_attempts, extra=extra)
        started = time.monotonic()
        with LeaseKeeper(self.store.renew, lease, self.settings.lease_seconds, job_id=lease.job.id) as keeper:
            finished: list[SegmentResult] = []  # partial results of the current batch
            on_progress = self._progress_callback(keeper, finished, extra)

            def work() -> AnalysisResult:
                return self.analyzer.analyze(
                    self._video_path(job),
                    job.model,
                    job_options(job),
                    on_progress,
                    on_segments=finished.extend,
                )

            outcome = self._settle(keeper, started, extra, work)
        self.metrics.record_job(job.model, outcome, time.monotonic() - started)
        self.refill_spares()

    def refill_spares(self) -> None:
        """Between jobs: start the decode children the next job takes (``sandbox_spares``)."""
        refill = getattr(self.analyzer, "refill_spares", None)  # the engine's; test doubles lack it
        if refill is not None:
            refill()

    def _video_path(self, job: Job) -> Path:
        if not job.blob_key or not self.blobs.path(job.blob_key).is_file():
            raise _VideoGone()
        return self.blobs.path(job.blob_key)

    def _progress_callback(
        self, keeper: LeaseKeeper[Lease], finished: list[SegmentResult], extra: dict[str, str]
    ) -> Callable[[float], None]:
        """Saves progress and the partial results gathered since the last call; raises
        LeaseLost or WorkerStopping, which end the analysis at its next batch."""

        def on_progress(fraction: float) -> None:
            if keeper.lost.is_set():
                raise LeaseLost()
            if self.stopping.is_set():
                raise WorkerStopping()
            fraction = min(max(fraction, 0.0), 1.0)
            try:
                if finished:
                    self.store.append_partial(keeper.lease, [s.to_dict() for s in finished], fraction)
                    finished.clear()
                self.store.report_progress(keeper.lease, fraction)
            except Unavailable as exc:  # progress is best effort; the lease keeper guards the claim
                log.warning("progress not saved: %s", exc, extra=extra)

        return on_progress

    def _settle(
        self,
        keeper: LeaseKeeper[Lease],
        started: float,
        extra: dict[str, str],
        work: Callable[[], AnalysisResult],
    ) -> str:
        """Run ``work`` (the analysis, or what re-raises its outcome) and record how it ended."""
        job = keeper.lease.job
        try:
            result = work()
            analysed = time.monotonic() - started
            self._complete(keeper, result.to_dict())
            if result.explanations and self.renders is not None:
                self.renders.explained(job.id)  # its pictures: drawn once this worker is free
            log.info("job succeeded in %.2fs", time.monotonic() - started, extra=extra)
            timings = result.provenance.timings
            self.metrics.record_results(
                job.model,
                len(result.segments),
                analysed,
                timings.decode_seconds,
                timings.inference_seconds,
                result.video.decoded_frames,
            )
            outcome = "succeeded"
        except LeaseLost:
            self._lease_lost(job.id, "job abandoned: lease lost", extra)
            outcome = "abandoned"
        except WorkerStopping:
            self.store.release(keeper.lease)
            log.info("job released: worker stopping", extra=extra)
            outcome = "released"
        except Unavailable as exc:  # nothing can be recorded now: the lease lapses, a claim retries
            log.warning("job left to its lease: %s", exc, extra=extra)
            outcome = "error"
        except AnalysisError as exc:
            outcome = self._fail(keeper.lease, exc.code, exc.detail, _retry(exc, job), extra)
        except ServiceError as exc:  # e.g. UnknownModel: will not change on retry
            outcome = self._fail(keeper.lease, exc.code, exc.detail, False, extra)
        except Exception as exc:
            log.exception("job crashed", extra=extra)
            outcome = self._fail(keeper.lease, "internal_error", f"{type(exc).__name__}: {exc}", True, extra)
        return outcome

    def _complete(self, keeper: LeaseKeeper[Lease], document: dict[str, Any]) -> None:
        """Save the results document; while the database is away, retry until the lease would lapse."""
        delay = 0.5
        while True:
            try:
                self.store.complete(keeper.lease, document)
                return
            except Unavailable:
                if keeper.lost.is_set() or time.time() + delay >= keeper.lease.expires_at:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _fail(self, lease: Lease, code: str, message: str, retryable: bool, extra: dict[str, str]) -> str:
        try:
            job = self.store.fail(lease, JobError(code, message[:2000]), retryable=retryable)
            log.warning("job %s: %s: %s", job.status.value, code, message, extra=extra)
            return "retry" if job.status.value == "queued" else "failed"
        except LeaseLost:
            self._lease_lost(lease.job.id, f"failure not recorded: lease lost ({code})", extra)
            return "abandoned"

    def _lease_lost(self, job_id: str, warning: str, extra: dict[str, str]) -> None:
        """A job canceled or deleted by its client loses its lease as expected: INFO. Any other
        loss (the lease expired and another worker took the job) is worth a WARNING."""
        try:
            job = self.store.get_job(job_id)
        except ServiceError:  # cannot tell: say what is known
            log.warning(warning, extra=extra)
            return
        if job is None:
            log.info("job deleted while it ran: analysis stopped", extra=extra)
        elif job.status is JobStatus.CANCELED:
            log.info("job canceled: analysis stopped", extra=extra)
        else:
            log.warning(warning, extra=extra)


def job_options(job: Job) -> JobOptions:
    """The stored options, validated again: a job queued before a rule tightened (e.g. a
    shorter segment than now allowed) fails ``invalid_options`` rather than crashing."""
    try:
        return JobOptions(**job.options)
    except ValidationError as exc:
        raise InvalidOptions(f"the job's options are no longer valid: {exc.errors()[0]['msg']}") from exc


def _retry(exc: AnalysisError, job: Job) -> bool:
    """Retry while attempts are left; an error with ``keep_code`` fails the last attempt
    with its own code (e.g. ``decoder_crashed``) rather than ``attempts_exhausted``."""
    return exc.retryable and not (exc.keep_code and job.attempts >= job.max_attempts)


class _VideoGone(AnalysisError):
    """The job's stored video is missing (deleted or never written)."""

    code = "video_missing"
    title = "Video missing"
    retryable = False


def run_in_thread(worker: Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, name=f"worker-{worker.worker_id}", daemon=True)
    thread.start()
    return thread
