"""GET /v1/jobs/{id}/annotated.mp4: requested (202), rendered by a worker as a follow-up
job, then served from the cache as H.264 with labels and a timeline drawn on."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from app.analysis.annotate import colour
from app.errors import LeaseLost
from app.store.renders import Render, RenderStore, renders_dir
from app.store.sql import SqlJobStore
from app.worker.multi import MultiJobWorker
from app.worker.renders import RenderRunner
from app.worker.runner import Worker
from tests.contract.conftest import FakeClock
from tests.integration.conftest import Service, assert_problem, submit

pytestmark = pytest.mark.anyio


async def render_requested(service: Service, clip: Path) -> tuple[Worker, str, str]:
    """A job analysed by a fresh worker, its annotated video requested (202): the worker, the
    job id and the annotated video's URL."""
    job_id = (await submit(service, clip)).json()["id"]
    worker = service.new_worker()
    assert worker.run_once()
    url = f"/v1/jobs/{job_id}/annotated.mp4"
    assert (await service.client.get(url)).status_code == 202
    return worker, job_id, url


def leftover_parts(service: Service) -> list[str]:
    """Partial render files in the cache folder (a render child writes one while it encodes)."""
    return sorted(p.name for p in renders_dir(service.settings).glob(".*part*"))


def multi_job_worker(service: Service) -> MultiJobWorker:
    """A worker with several jobs in flight, on the service's store, blobs and settings."""
    from tests.integration.conftest import shared_analyzer

    return MultiJobWorker(
        store=service.store,
        blobs=service.app.state.blobs,
        settings=service.settings,
        analyzer_factory=lambda: shared_analyzer(service.settings),
    )


@pytest.mark.settings(annotate_max_height=64)
async def test_render_on_request_then_serve_from_cache(service: Service, short_clip: Path) -> None:
    job_id = (await submit(service, short_clip, segment_seconds=1.0, top_k=2)).json()["id"]
    url = f"/v1/jobs/{job_id}/annotated.mp4"
    assert_problem(await service.client.get(url), 409, "job_not_finished")
    worker = service.new_worker()
    assert worker.run_once(), "the analysis runs first"

    first = await service.client.get(url)
    assert first.status_code == 202 and first.headers["retry-after"] == "2"
    assert first.json()["status"] == "queued"
    assert (await service.client.get(url)).status_code == 202, "asking again queues nothing new"
    assert worker.run_once(), "then the render, as a follow-up job"
    assert not worker.run_once(), "nothing left"

    video = await service.client.get(url)
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    part = await service.client.get(url, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100

    results = (await service.client.get(f"/v1/jobs/{job_id}/results")).json()
    with av.open(io.BytesIO(video.content)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert frames[0].shape == (64, 84, 3), "scaled to the height cap, aspect kept, even width"
    assert len(frames) == 120, "every source frame is kept"
    # The timeline bar: the 3rd segment's top-1 colour sits at 2.5/4 of the width.
    top1 = results["segments"][2]["labels"][0]["class_id"]
    bar = frames[10][-1, int(84 * 2.5 / 4)].astype(int)
    assert np.abs(bar - np.array(colour(top1))).max() < 40, (bar, colour(top1))
    # The label box darkens the top-left corner against the source.
    assert frames[10][2:10, 2:30].mean() < frames[10][30:40, 2:30].mean()

    await service.client.delete(f"/v1/jobs/{job_id}")
    assert not list((service.settings.data_dir / "renders").glob(f"{job_id}.*")), (
        "the cache goes with the job"
    )


async def test_render_failure_is_reported_and_retryable(service: Service, short_clip: Path) -> None:
    worker, job_id, url = await render_requested(service, short_clip)
    service.app.state.blobs.path(job_id).write_bytes(b"no longer a video")
    for _ in range(3):
        assert worker.run_once()
    assert not worker.run_once(), "given up after three attempts"
    failed = await service.client.get(url)
    body = assert_problem(failed, 409, "render_failed")
    assert "retry=1" in body["detail"]
    again = await service.client.get(url + "?retry=1")
    assert again.status_code == 202 and again.json()["attempts"] == 0


@pytest.mark.settings(worker_jobs_in_flight=2, annotate_max_height=64)
async def test_multi_job_workers_render_too(service: Service, short_clip: Path) -> None:
    worker = multi_job_worker(service)
    job_id = (await submit(service, short_clip)).json()["id"]
    worker.drain()
    url = f"/v1/jobs/{job_id}/annotated.mp4"
    assert (await service.client.get(url)).status_code == 202
    worker.drain()
    response = await service.client.get(url)
    assert response.status_code == 200 and response.headers["content-type"] == "video/mp4"


@pytest.mark.settings(annotate_max_height=64)
async def test_pending_answers_say_where_to_poll_and_head_works(service: Service, short_clip: Path) -> None:
    job_id = (await submit(service, short_clip)).json()["id"]
    url = f"/v1/jobs/{job_id}/annotated.mp4"
    assert (await service.client.head(url)).status_code == 409
    worker = service.new_worker()
    assert worker.run_once()

    head = await service.client.head(url)
    assert head.status_code == 202 and head.content == b"", "HEAD requests the render as GET does"
    assert head.headers["location"] == url and head.headers["retry-after"] == "2"
    pending = await service.client.get(url)
    assert pending.status_code == 202 and pending.headers["location"] == url
    assert head.headers["content-type"] == pending.headers["content-type"] == "application/json"
    assert int(head.headers["content-length"]) == len(pending.content)
    assert worker.run_once() and not worker.run_once(), "one render, requested by the HEAD"

    video = await service.client.get(url)
    head = await service.client.head(url)
    assert head.status_code == video.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == "video/mp4"
    assert int(head.headers["content-length"]) == len(video.content) > 0


def render_store(service: Service, clock: FakeClock | None = None) -> RenderStore:
    store = service.store
    assert isinstance(store, SqlJobStore)
    attempts = service.settings.render_max_attempts
    if clock is None:
        return RenderStore(store.engine, max_attempts=attempts)
    return RenderStore(store.engine, max_attempts=attempts, clock=clock)


async def test_render_lease_renewal_is_fenced(service: Service, short_clip: Path) -> None:
    job_id = (await submit(service, short_clip)).json()["id"]
    clock = FakeClock()
    renders = render_store(service, clock)
    renders.request(job_id)
    first = renders.claim(10)
    assert first is not None and renders.claim(10) is None
    clock.advance(8)
    renders.renew(first, 10)
    clock.advance(8)
    assert renders.claim(10) is None, "renewed at +8 s: still leased at +16 s"
    clock.advance(3)
    second = renders.claim(10)
    assert second is not None and second.attempts == 2, "lapsed: another worker takes it over"
    with pytest.raises(LeaseLost):
        renders.renew(first, 10)
    assert not renders.finish(first, file_key="x.mp4") and renders.finish(second, file_key="x.mp4")


@pytest.mark.settings(annotate_max_height=64, lease_seconds=1.0)
async def test_a_render_longer_than_its_lease_is_not_claimed_again(
    service: Service, short_clip: Path
) -> None:
    _, job_id, url = await render_requested(service, short_clip)
    drawn, release = threading.Event(), threading.Event()

    class SlowRunner(RenderRunner):
        """Holds on after drawing, past several lease lengths, before recording."""

        def _render(self, render: Render) -> str:
            key = super()._render(render)
            drawn.set()
            release.wait(60)
            return key

    blobs, settings = service.app.state.blobs, service.settings
    slow = SlowRunner.for_store(service.store, blobs, settings)
    other = RenderRunner.for_store(service.store, blobs, settings)
    assert slow is not None and other is not None
    ran: list[bool] = []
    thread = threading.Thread(target=lambda: ran.append(slow.run_once()))
    thread.start()
    try:
        assert drawn.wait(60)
        time.sleep(2.5 * settings.lease_seconds)
        assert not other.run_once(), "the lease was renewed: no other worker takes the render"
    finally:
        release.set()
        thread.join(60)
    assert ran == [True]
    render = render_store(service).get(job_id)
    assert render is not None and (render.status, render.attempts) == ("succeeded", 1)
    assert (await service.client.get(url)).status_code == 200


@pytest.mark.settings(annotate_max_height=64, render_every_jobs=2)
async def test_a_busy_worker_still_renders_between_jobs(service: Service, short_clip: Path) -> None:
    """A steady analysis backlog does not starve annotated videos: after every
    ``render_every_jobs`` analysis jobs the worker renders one that is waiting."""
    worker, _, url = await render_requested(service, short_clip)  # analysis 1
    backlog = [(await submit(service, short_clip)).json()["id"] for _ in range(3)]
    assert worker.run_once()  # analysis 2: now two since the last render
    assert worker.run_once()  # the render, although analysis is still queued
    assert (await service.client.get(url)).status_code == 200
    statuses = [(await service.client.get(f"/v1/jobs/{j}")).json()["status"] for j in backlog]
    assert statuses == ["succeeded", "queued", "queued"]


@pytest.mark.settings(annotate_max_height=64, render_every_jobs=1, worker_jobs_in_flight=1)
async def test_a_busy_multi_job_worker_still_renders_between_jobs(service: Service, short_clip: Path) -> None:
    worker = multi_job_worker(service)
    first = (await submit(service, short_clip)).json()["id"]
    worker.drain()
    url = f"/v1/jobs/{first}/annotated.mp4"
    assert (await service.client.get(url)).status_code == 202
    backlog = [(await submit(service, short_clip)).json()["id"] for _ in range(3)]
    while (await service.client.head(url)).status_code == 202:
        assert worker.run_once(), "the queue ran dry before the render"
    statuses = [(await service.client.get(f"/v1/jobs/{j}")).json()["status"] for j in backlog]
    assert statuses.count("queued") >= 1, statuses
    worker.drain()


@pytest.mark.parametrize(
    ("fault", "error"), [("segfault", "DecoderCrashed"), ("oom", "DecoderResourceLimit")]
)
@pytest.mark.settings(annotate_max_height=64, decode_memory_bytes=512 * 1024**2)
async def test_a_render_that_crashes_its_child_fails_and_the_worker_goes_on(
    service: Service, short_clip: Path, fault: str, error: str
) -> None:
    """Rendering re-reads the video in a sandboxed child: a crash or memory blow-up there fails
    that render with its code; the worker process is untouched and goes on with its work."""
    from dataclasses import replace

    worker, job_id, url = await render_requested(service, short_clip)
    assert worker.renders is not None
    worker.renders.sandbox = replace(worker.renders.sandbox, fault=fault)
    for _ in range(3):
        assert worker.run_once()
    assert_problem(await service.client.get(url), 409, "render_failed")
    failed = worker.renders.renders.get(job_id)
    assert failed is not None and (failed.error or "").startswith(f"{error}:"), failed
    assert leftover_parts(service) == [], "a child killed mid-encode leaves no partial file"
    next_job = (await submit(service, short_clip)).json()["id"]
    worker.renders.sandbox = replace(worker.renders.sandbox, fault=None)
    assert worker.run_once()
    assert (await service.client.get(f"/v1/jobs/{next_job}")).json()["status"] == "succeeded"
    assert (await service.client.get(url + "?retry=1")).status_code == 202
    assert worker.run_once()
    assert (await service.client.get(url)).status_code == 200


async def test_a_hanging_render_is_stopped_at_its_deadline(service: Service, short_clip: Path) -> None:
    from dataclasses import replace

    worker, job_id, _ = await render_requested(service, short_clip)
    assert worker.renders is not None
    worker.renders.sandbox = replace(
        worker.renders.sandbox, fault="hang", timeout_seconds=1.0, timeout_per_video_second=0.0
    )
    assert worker.run_once()
    assert leftover_parts(service) == []
    render = worker.renders.renders.get(job_id)
    assert render is not None and (render.error or "").startswith("DecoderTimeout:"), render
