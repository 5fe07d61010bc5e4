"""The worker's follow-up jobs: annotated videos (plain or ``overlay=heatmap``) and explanation
pictures. Run when no analysis job is waiting, and also once per ``render_every_jobs`` finished
analysis jobs, so a steady backlog cannot starve them."""

from __future__ import annotations

import logging

from app.blobs import BlobStore
from app.domain import JobStatus, RenderVariant
from app.errors import ServiceError
from app.settings import Settings
from app.store.base import JobStore
from app.store.renders import Render, RenderStore, render_key, renders_dir, variant_of
from app.worker.lease import LeaseKeeper

log = logging.getLogger(__name__)


class RenderRunner:
    def __init__(self, store: JobStore, renders: RenderStore, blobs: BlobStore, settings: Settings) -> None:
        from app.analysis.decode_sandbox import SandboxLimits

        self.store, self.renders, self.blobs, self.settings = store, renders, blobs, settings
        self.sandbox = SandboxLimits.from_settings(settings)
        """Limits of the render child (the decode child's); tests set ``fault`` here."""
        self._jobs_since_render = 0

    def job_finished(self) -> None:
        """Count an analysis job this worker finished (for ``run_if_due``)."""
        self._jobs_since_render += 1

    def explained(self, job_id: str) -> None:
        """Queue the pictures of a job that succeeded with explanations. Drawn when this
        worker is next free, so they are usually ready before anyone asks; a request that
        finds none queues them again, so a lost queueing here only costs the asker a wait."""
        try:
            self.renders.request(job_id, render_key(job_id, self.settings, RenderVariant.PICTURES))
        except ServiceError as exc:
            log.warning("explanation pictures not queued: %s", exc, extra={"job_id": job_id})

    def run_if_due(self) -> bool:
        """Render one waiting video if ``render_every_jobs`` analysis jobs ran since the last
        chance to; False when not due or none was waiting. It runs in the caller's thread: a
        multi-job worker's jobs in flight pause (leases still renewed) until it is done."""
        if self._jobs_since_render < self.settings.render_every_jobs:
            return False
        return self.run_once()

    @classmethod
    def for_store(cls, store: JobStore, blobs: BlobStore, settings: Settings) -> RenderRunner | None:
        from app.store.sql import SqlJobStore

        if not isinstance(store, SqlJobStore):
            return None
        renders = RenderStore(store.engine, max_attempts=settings.render_max_attempts)
        return cls(store, renders, blobs, settings)

    def run_once(self) -> bool:
        """Render one requested video; False when none was waiting."""
        self._jobs_since_render = 0
        render = self.renders.claim(self.settings.lease_seconds)
        if render is None:
            return False
        extra = {"job_id": render.job_id}
        try:
            # Renewed while it draws: a render may take longer than one lease.
            with LeaseKeeper(self.renders.renew, render, self.settings.lease_seconds, job_id=render.job_id):
                key = self._render(render)
        except Exception as exc:  # recorded on the render row; the job itself is untouched
            log.warning("annotated video failed: %s", exc, extra=extra)
            self.renders.finish(render, error=f"{type(exc).__name__}: {exc}"[:2000])
            return True
        if not self.renders.finish(render, file_key=key):
            log.warning("annotated video: lease lost before recording", extra=extra)
        else:
            log.info("rendered %s", variant_of(render.job_id, key, self.settings).value, extra=extra)
        return True

    def _render(self, render: Render) -> str:
        from app.analysis.limits import MediaLimits
        from app.analysis.render_sandbox import render_in_sandbox

        job = self.store.get_job(render.job_id)
        if job is None or job.status is not JobStatus.SUCCEEDED:
            raise ValueError("the job has no results")
        results = self.store.get_results(job.id)
        if results is None or not job.blob_key:
            raise ValueError("the job's results or video are gone")
        variant = variant_of(job.id, render.file_key, self.settings)
        key = render_key(job.id, self.settings, variant)
        explanations = results.get("explanations") or []
        if variant is not RenderVariant.ANNOTATED and not explanations:
            raise ValueError("the job has no explanations to draw")
        render_in_sandbox(
            self.blobs.path(job.blob_key),
            renders_dir(self.settings) / key,
            results.get("segments") or [],
            duration=(job.video.duration or 0.0) if job.video else 0.0,
            allowed_formats=self.settings.allowed_format_list,
            limits=MediaLimits.from_settings(self.settings),
            max_height=self.settings.annotate_max_height,
            threads=self.settings.decode_threads,
            sandbox=self.sandbox,
            lines=None if results.get("task") == "multilabel" else 3,
            explanations=explanations if variant is not RenderVariant.ANNOTATED else (),
            pictures=variant is RenderVariant.PICTURES,
            detections=results.get("detections") or (),
        )
        return key
