"""Scale-out pieces through the real ASGI app on SQLite: /metrics, the SIGTERM drain
(503 before reading the body), and the worker's storage sweep (orphans, retention)."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.domain import JobStatus
from tests.integration.conftest import Service, assert_problem, close_app, submit

pytestmark = pytest.mark.anyio


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        key, _, value = line.rpartition(" ")
        if key == name:
            return float(value)
    raise AssertionError(f"{name} not in metrics:\n{text}")


async def test_metrics_count_jobs_uploads_and_outcomes(service: Service, short_clip: Path) -> None:
    first = await service.client.get("/metrics")
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/plain")
    assert _sample(first.text, "vas_store_up") == 1
    assert _sample(first.text, 'vas_jobs{status="queued"}') == 0

    job = (await submit(service, short_clip, segment_seconds=2.0)).json()
    queued = (await service.client.get("/metrics")).text
    assert _sample(queued, 'vas_jobs{status="queued"}') == 1 and _sample(queued, "vas_queue_depth") == 1
    assert _sample(queued, "vas_upload_bytes_total") == short_clip.stat().st_size
    assert _sample(queued, "vas_jobs_submitted_total") == 1

    worker = service.new_worker(metrics=service.app.state.metrics)  # as the embedded worker shares it
    assert worker.run_once()
    assert service.store.get_job(job["id"]).status is JobStatus.SUCCEEDED  # type: ignore[union-attr]
    done = (await service.client.get("/metrics")).text
    assert _sample(done, 'vas_jobs{status="succeeded"}') == 1 and _sample(done, "vas_queue_depth") == 0
    assert _sample(done, 'vas_job_outcomes_total{outcome="succeeded"}') == 1
    assert _sample(done, 'vas_segments_total{model="x3d_xs"}') == 2
    assert 'vas_job_duration_seconds_count{model="x3d_xs",outcome="succeeded"} 1.0' in done
    assert 'vas_segments_per_second_count{model="x3d_xs"} 1.0' in done
    assert _sample(done, 'vas_decode_seconds_total{model="x3d_xs"}') > 0
    assert _sample(done, 'vas_inference_seconds_total{model="x3d_xs"}') > 0


async def test_draining_refuses_new_writes_but_keeps_reads_and_probes(
    service: Service, short_clip: Path
) -> None:
    kept = await submit(service, short_clip)
    assert kept.status_code == 202
    service.app.state.draining = True
    refused = await submit(service, short_clip)
    body = assert_problem(refused, 503, "draining")
    assert refused.headers["retry-after"] == "1" and refused.headers["connection"] == "close"
    assert "shutting down" in body["detail"]
    assert service.stored_files() == [kept.json()["id"]], "refused before the body was read"
    listed = await service.client.get("/v1/jobs")
    assert listed.status_code == 200 and [job["id"] for job in listed.json()["items"]] == [kept.json()["id"]]
    assert (await service.client.get(kept.headers["location"])).status_code == 200
    assert_problem(await service.client.delete(kept.headers["location"]), 503, "draining")
    assert (await service.client.get(kept.headers["location"])).json()["status"] != "canceled"
    assert_problem(await service.client.get("/readyz"), 503, "not_ready")
    assert (await service.client.get("/healthz")).status_code == 200
    assert (await service.client.get("/metrics")).status_code == 200
    service.app.state.draining = False
    assert (await service.client.get("/readyz")).status_code == 200


def _age(path: Path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


@pytest.mark.settings(orphan_grace_seconds=600)
async def test_sweep_removes_old_orphans_only(service: Service, short_clip: Path) -> None:
    job = (await submit(service, short_clip)).json()
    blobs = service.app.state.blobs
    for key in ("orphan-old", "orphan-new"):
        writer = blobs.writer(key)
        writer.write(b"x")
        writer.commit()
    _age(blobs.path("orphan-old"), 3600)
    _age(blobs.path(job["id"]), 3600)  # old but referenced by its (queued) job
    service.new_worker().sweep_storage()
    assert service.stored_files() == sorted([job["id"], "orphan-new"])


@pytest.mark.settings(retention_days=1)
async def test_retention_deletes_videos_of_old_finished_jobs(service: Service, short_clip: Path) -> None:
    old = (await submit(service, short_clip, segment_seconds=2.0)).json()
    assert service.new_worker().run_once()
    queued = (await submit(service, short_clip)).json()
    worker = service.new_worker()
    worker.sweep_storage()
    assert service.stored_files() == sorted([old["id"], queued["id"]]), "nothing is old enough yet"
    from app.store.renders import cached_job_ids, render_key, renders_dir

    renders_dir(service.settings).mkdir(parents=True, exist_ok=True)
    for job in (old, queued):  # stand-ins for annotated renders of both jobs
        (renders_dir(service.settings) / render_key(job["id"], service.settings)).write_bytes(b"mp4")
    service.settings.retention_days = 1e-9  # everything finished so far is past retention
    time.sleep(0.01)
    worker.sweep_storage()
    assert service.stored_files() == [queued["id"]]
    assert cached_job_ids(service.settings) == {queued["id"]}, "a render goes with its video"
    kept = (await service.client.get(f"/v1/jobs/{old['id']}")).json()
    assert kept["status"] == "succeeded" and kept["video"]["filename"] == "short.mp4"
    assert (await service.client.get(f"/v1/jobs/{old['id']}/results")).status_code == 200

    service.settings.retention_delete_results = True
    worker.sweep_storage()
    assert_problem(await service.client.get(f"/v1/jobs/{old['id']}"), 404, "not_found")
    assert (await service.client.get(f"/v1/jobs/{queued['id']}")).status_code == 200


@pytest.mark.parametrize("auth_enabled", [False, True])
async def test_database_away_is_503_with_retry_after_and_loses_nothing(
    tmp_path: Path, short_clip: Path, auth_enabled: bool
) -> None:
    """PostgreSQL unreachable (here: nothing listens on the port): readiness and every API call
    that needs the database answer 503 + Retry-After as problem+json; liveness and metrics still
    answer; an upload refused this way leaves no file behind."""
    from app.api.app import create_app
    from app.settings import Settings

    settings = Settings(
        data_dir=tmp_path / "data",
        models_dir=tmp_path,
        embedded_worker=False,
        auto_migrate=False,
        auth_enabled=auth_enabled,
        database_url="postgresql+psycopg://postgres@127.0.0.1:1/absent",
    )
    app = create_app(settings)
    headers = {"Authorization": "Bearer vas_" + "A" * 43} if auth_enabled else {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.headers["retry-after"]
        for path in ("/v1/jobs", "/v1/jobs/some-id"):
            away = await client.get(path, headers=headers)
            assert_problem(away, 503, "unavailable")
            assert int(away.headers["retry-after"]) > 0
        with short_clip.open("rb") as fh:
            upload = await client.post("/v1/jobs", files={"file": ("clip.mp4", fh)}, headers=headers)
        assert_problem(upload, 503, "unavailable")
        chunks_read = 0

        async def big_body() -> AsyncIterator[bytes]:
            nonlocal chunks_read
            for _ in range(64):
                chunks_read += 1
                yield bytes(1024 * 1024)

        refused = await client.post(
            "/v1/jobs",
            content=big_body(),
            headers=headers | {"content-type": "multipart/form-data; boundary=x"},
        )
        assert_problem(refused, 503, "unavailable")
        assert chunks_read <= 1, "refused before the body was read"
        assert (await client.get("/healthz")).status_code == 200
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200 and "vas_store_up 0.0" in metrics.text
    videos = settings.videos_dir
    assert not videos.exists() or [p for p in videos.rglob("*") if p.is_file()] == []
    close_app(app)
