"""A worker starts the next job's decode children between jobs (``sandbox_spares``), and the
next job runs on them: real HTTP upload, SQLite store, sandboxed decode."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.analysis.engine import Analyzer
from app.worker.multi import MultiJobWorker
from app.worker.runner import Worker
from tests.integration.conftest import Service, submit

pytestmark = pytest.mark.anyio


async def test_spares_are_started_after_a_job_and_taken_by_the_next(
    service: Service, short_clip: Path
) -> None:
    settings = service.settings.model_copy(update={"decode_children": 2})
    analyzer = Analyzer.from_settings(settings)
    assert analyzer.spares is not None
    try:
        for cls in (Worker, MultiJobWorker):
            worker = cls(
                store=service.store,
                blobs=service.app.state.blobs,
                settings=settings,
                analyzer_factory=lambda: analyzer,
            )
            first = (await submit(service, short_clip, segment_seconds=2)).json()["id"]
            assert worker.run_once()
            if isinstance(worker, MultiJobWorker):
                worker.drain()
            assert (await service.client.get(f"/v1/jobs/{first}")).json()["status"] == "succeeded"
            assert analyzer.spares.waiting() == 2, cls.__name__
            spares = [f.result() for f in analyzer.spares._spares]
            second = (await submit(service, short_clip, segment_seconds=2)).json()["id"]
            assert worker.run_once()
            if isinstance(worker, MultiJobWorker):
                worker.drain()
            assert (await service.client.get(f"/v1/jobs/{second}")).json()["status"] == "succeeded"
            assert spares[0].proc.returncode is not None, "the job's decoder was the first spare, now done"
            assert analyzer.spares.waiting() == 2, "refilled for the job after"
    finally:
        analyzer.spares.close()
