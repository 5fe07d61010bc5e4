"""Upload -> queue -> worker -> results, through the real ASGI app, SQLite and PyAV."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from app.domain import JobStatus
from app.errors import LeaseLost
from tests.integration.conftest import Service, assert_problem, close_app, submit
from tests.media import write_video

pytestmark = pytest.mark.anyio


async def test_submit_run_and_read_results(service: Service, short_clip: Path) -> None:
    response = await submit(service, short_clip, model="x3d_xs", segment_seconds=1.0, top_k=3)
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued" and job["progress"] == 0 and job["attempts"] == 0
    assert job["options"]["segment_seconds"] == 1.0 and job["options"]["top_k"] == 3
    video = job["video"]
    assert video["filename"] == "short.mp4" and video["width"] == 128 and video["height"] == 96
    assert video["codec"] == "h264" and video["fps"] == pytest.approx(30.0)
    assert video["duration"] == pytest.approx(4.0, abs=0.05)
    assert service.stored_files() == [job["id"]], "stored under the job id, not the client's name"

    early = await service.client.get(f"/v1/jobs/{job['id']}/results")
    assert assert_problem(early, 409, "job_not_finished")["job_status"] == "queued"

    assert service.new_worker().run_once() is True
    done = (await service.client.get(f"/v1/jobs/{job['id']}")).json()
    assert done["status"] == "succeeded", done
    assert done["progress"] == 1.0 and done["attempts"] == 1
    assert done["started_at"] and done["finished_at"] and done["error"] is None

    results = (await service.client.get(f"/v1/jobs/{job['id']}/results")).json()
    assert results["job_id"] == job["id"] and results["model"] == "x3d_xs"
    assert results["labelset"] == "kinetics400"
    segments = results["segments"]
    assert [s["index"] for s in segments] == [0, 1, 2, 3]
    assert [s["start"] for s in segments] == pytest.approx([0, 1, 2, 3], abs=1e-6)
    assert [s["end"] for s in segments] == pytest.approx([1, 2, 3, 4], abs=1e-6)
    for segment in segments:
        assert len(segment["labels"]) == 3
        scores = [label["score"] for label in segment["labels"]]
        assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-5
        assert all(0 <= label["class_id"] < 400 and label["label"] for label in segment["labels"])
    assert len(results["summary"]) == 3 and results["video"]["filename"] == "short.mp4"

    listing = (await service.client.get("/v1/jobs")).json()
    assert [item["id"] for item in listing["items"]] == [job["id"]] and listing["next_cursor"] is None


async def test_list_is_newest_first_with_cursor_pages(service: Service, short_clip: Path) -> None:
    ids = [(await submit(service, short_clip)).json()["id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await service.client.get("/v1/jobs", params=params)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    queued = (await service.client.get("/v1/jobs", params={"status": "succeeded"})).json()
    assert queued["items"] == []
    bad = await service.client.get("/v1/jobs", params={"cursor": "not-a-cursor"})
    assert_problem(bad, 422, "invalid_options")


async def test_idempotency_key_returns_the_same_job(service: Service, short_clip: Path) -> None:
    headers = {"Idempotency-Key": "upload-42"}
    with short_clip.open("rb") as fh:
        first = await service.client.post("/v1/jobs", files={"file": ("a.mp4", fh)}, headers=headers)
    with short_clip.open("rb") as fh:
        again = await service.client.post("/v1/jobs", files={"file": ("a.mp4", fh)}, headers=headers)
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"] == f"/v1/jobs/{first.json()['id']}"
    assert len((await service.client.get("/v1/jobs")).json()["items"]) == 1
    assert service.stored_files() == [first.json()["id"]]


async def test_restart_finds_queued_jobs_and_reruns_expired_lease(service: Service, short_clip: Path) -> None:
    from app.api.app import create_app

    job_id = (await submit(service, short_clip)).json()["id"]
    crashed = service.store.claim("crashed-worker", lease_seconds=0.2)  # claims, then "dies"
    assert crashed is not None and crashed.job.id == job_id
    queued_id = (await submit(service, short_clip)).json()["id"]  # never claimed before the restart
    await asyncio.sleep(0.3)

    restarted = create_app(service.settings)  # a new process on the same database and data dir
    try:
        worker = service.new_worker()
        worker.store = restarted.state.store
        assert worker.run_once() is True and worker.run_once() is True
        assert worker.run_once() is False
        job = restarted.state.store.get_job(job_id)
        assert job is not None and job.status is JobStatus.SUCCEEDED and job.attempts == 2
        queued = restarted.state.store.get_job(queued_id)
        assert queued is not None and queued.status is JobStatus.SUCCEEDED and queued.attempts == 1
        with pytest.raises(LeaseLost):  # the stale worker cannot overwrite the outcome
            restarted.state.store.complete(crashed, {"segments": []})
        results = restarted.state.store.get_results(job_id)
        assert results is not None and len(results["segments"]) > 0
    finally:
        close_app(restarted)


async def test_two_worker_threads_never_run_the_same_job(service: Service, videos_dir: Path) -> None:
    clip = write_video(videos_dir / "tiny.mp4", seconds=1.0, width=64, height=48)
    ids = {(await submit(service, clip)).json()["id"] for _ in range(8)}
    workers = [service.new_worker(worker_id=f"w{i}") for i in range(2)]
    threads = [threading.Thread(target=lambda w=w: [None for _ in iter(w.run_once, False)]) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    for job_id in ids:
        job = service.store.get_job(job_id)
        assert job is not None and job.status is JobStatus.SUCCEEDED and job.attempts == 1


async def test_cancel_queued_job_deletes_video(service: Service, short_clip: Path) -> None:
    job_id = (await submit(service, short_clip)).json()["id"]
    assert (await service.client.delete(f"/v1/jobs/{job_id}")).status_code == 204
    job = (await service.client.get(f"/v1/jobs/{job_id}")).json()
    assert job["status"] == "canceled"
    assert service.stored_files() == []
    assert service.new_worker().run_once() is False, "a canceled job is never claimed"
    body = assert_problem(await service.client.get(f"/v1/jobs/{job_id}/results"), 409, "job_not_finished")
    assert body["job_status"] == "canceled"
    assert (await service.client.delete(f"/v1/jobs/{job_id}")).status_code == 204
    assert_problem(await service.client.get(f"/v1/jobs/{job_id}"), 404, "not_found")


@pytest.mark.settings(batch_size=1)
async def test_cancel_running_job_stops_at_next_batch(service: Service, videos_dir: Path) -> None:
    clip = write_video(videos_dir / "long.mp4", seconds=20.0, width=96, height=72)
    job_id = (await submit(service, clip, segment_seconds=0.5)).json()["id"]
    worker = service.new_worker()
    thread = threading.Thread(target=worker.run_once)
    thread.start()
    for _ in range(600):
        job = service.store.get_job(job_id)
        assert job is not None
        if job.progress > 0:
            break
        await asyncio.sleep(0.05)
    assert (await service.client.delete(f"/v1/jobs/{job_id}")).status_code == 204
    thread.join(timeout=120)
    assert not thread.is_alive()
    job = service.store.get_job(job_id)
    assert job is not None and job.status is JobStatus.CANCELED and job.progress < 1.0
    assert service.store.get_results(job_id) is None and service.stored_files() == []


async def test_finished_job_delete_removes_everything(service: Service, short_clip: Path) -> None:
    job_id = (await submit(service, short_clip)).json()["id"]
    service.new_worker().run_once()
    assert (await service.client.delete(f"/v1/jobs/{job_id}")).status_code == 204
    assert_problem(await service.client.get(f"/v1/jobs/{job_id}"), 404, "not_found")
    assert service.store.get_results(job_id) is None and service.stored_files() == []


async def test_delete_racing_the_end_of_a_job_removes_it_whole(
    service: Service, short_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DELETE reads a running job, then the worker completes it before the cancel lands:
    the job goes entirely (as a finished job would), never stays 'succeeded' without results."""
    job_id = (await submit(service, short_clip)).json()["id"]
    lease = service.store.claim("racing-worker", lease_seconds=30)
    assert lease is not None and lease.job.id == job_id
    real_cancel = service.store.cancel

    def cancel_after_the_worker_finished(job_id: str, tenant: str | None = None) -> object:
        service.store.complete(lease, {"segments": [{"index": 0, "start": 0.0, "end": 1.0, "labels": []}]})
        return real_cancel(job_id, tenant)

    monkeypatch.setattr(service.store, "cancel", cancel_after_the_worker_finished)
    assert (await service.client.delete(f"/v1/jobs/{job_id}")).status_code == 204
    assert_problem(await service.client.get(f"/v1/jobs/{job_id}"), 404, "not_found")
    assert service.store.get_results(job_id) is None and service.stored_files() == []


async def test_list_treats_empty_query_values_as_absent(service: Service, short_clip: Path) -> None:
    job_id = (await submit(service, short_clip)).json()["id"]
    for query in ("?status=&limit=&cursor=", "?status=", "?cursor=", "?limit="):
        listed = await service.client.get(f"/v1/jobs{query}")
        assert listed.status_code == 200, (query, listed.text)
        assert [job["id"] for job in listed.json()["items"]] == [job_id]
    assert_problem(await service.client.get("/v1/jobs?limit=0"), 422, "invalid_request")
    assert_problem(await service.client.get("/v1/jobs?status=bogus"), 422, "invalid_request")


async def test_missing_weights_are_refused_at_submission_with_the_file_name(
    service: Service, short_clip: Path
) -> None:
    """(A file removed after submission still fails at once in the worker: test_admission.py.)"""
    response = await submit(service, short_clip, model="x3d_s")  # no X3D_S.pyth present
    detail = assert_problem(response, 422, "weights_missing")["detail"]
    assert "X3D_S.pyth" in detail and str(service.settings.models_dir) in detail
    assert service.stored_files() == []


async def test_accepted_upload_is_logged_with_its_job_id(
    service: Service, short_clip: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="app.api.routes.jobs"):
        job_id = (await submit(service, short_clip)).json()["id"]
    accepted = [r for r in caplog.records if r.getMessage().startswith("job accepted")]
    assert len(accepted) == 1 and getattr(accepted[0], "job_id", None) == job_id
    assert getattr(accepted[0], "tenant", None) is not None
