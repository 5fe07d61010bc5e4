"""A worker holding several jobs: shared batches, same results as one job at a time, faults."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import torch

from app.analysis.catalog import load_catalog
from app.analysis.decode_sandbox import SandboxLimits
from app.analysis.engine import Analyzer
from app.analysis.loader import build_model
from app.analysis.probe import probe_video
from app.blobs import LocalBlobStore
from app.domain import JobStatus, NewJob
from app.options import JobOptions
from app.settings import Settings
from app.store.base import JobStore
from app.store.factory import open_store
from app.worker.multi import MultiJobWorker, worker_class
from app.worker.runner import Worker
from tests.integration.conftest import make_settings
from tests.media import write_video
from tests.unit.test_pipeline import TINY, assert_same_results


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cross-job-models")
    (folder / "manifest.json").write_text(json.dumps({"models": [TINY]}))
    (folder / "tiny_labels.json").write_text(json.dumps([f"class {i}" for i in range(7)]))
    torch.manual_seed(1)
    model = build_model(load_catalog(folder).get("tiny"))
    torch.save({"model_state": model.state_dict()}, folder / "tiny.pyth")
    return folder


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, dict[str, Any]]]:
    folder = tmp_path_factory.mktemp("cross-job-videos")
    return [
        (write_video(folder / "a.mp4", seconds=2.0, fps=25, width=96, height=64), {}),
        (write_video(folder / "b.mkv", seconds=1.5, fps=30, width=64, height=96), {"crops": 3}),
        (write_video(folder / "c.mp4", seconds=3.0, fps=30, width=80, height=48), {"segment_seconds": 0.5}),
        (
            write_video(folder / "d.mkv", seconds=1.0, fps=24, width=97, height=71, codec="mpeg4"),
            {"clips_per_segment": 2},
        ),
        (write_video(folder / "e.mp4", seconds=2.5, fps=30, width=64, height=48, rotation=90), {}),
    ]


class Setup:
    def __init__(self, tmp_path: Path, models: Path, **overrides: Any) -> None:
        values: dict[str, Any] = {"batch_size": 4, "poll_interval": 0.05, "max_attempts": 2}
        self.settings: Settings = make_settings(tmp_path, models, **(values | overrides))
        self.store: JobStore = open_store(self.settings)
        self.blobs = LocalBlobStore(self.settings.videos_dir)
        self.analyzer = Analyzer.from_settings(self.settings)

    def submit(self, path: Path, options: dict[str, Any]) -> str:
        job_id = uuid.uuid4().hex
        writer = self.blobs.writer(job_id)
        writer.write(path.read_bytes())
        writer.commit()
        allowed = self.settings.allowed_format_list
        info = probe_video(self.blobs.path(job_id), filename=path.name, allowed_formats=allowed)
        new = NewJob(id=job_id, model="tiny", options=options, video=info, blob_key=job_id, max_attempts=2)
        self.store.create_job(new)
        return job_id

    def worker(self, cls: type[Worker] = Worker) -> Any:
        return cls(
            store=self.store, blobs=self.blobs, settings=self.settings, analyzer_factory=lambda: self.analyzer
        )


def test_jobs_in_flight_share_batches_and_match_one_job_at_a_time(
    tmp_path: Path, models: Path, clips: list[tuple[Path, dict[str, Any]]]
) -> None:
    setup = Setup(tmp_path, models, worker_jobs_in_flight=3, batch_max_wait_seconds=0.5)
    assert worker_class(setup.settings) is MultiJobWorker
    ids = [setup.submit(path, options) for path, options in clips]
    worker: MultiJobWorker = setup.worker(MultiJobWorker)
    most = 0
    while worker.run_once():
        most = max(most, len(worker.active))
    assert most == 3
    simple = Analyzer(  # one job alone, decoded in process: the reference
        models_dir=models,
        allowed_formats=setup.settings.allowed_format_list,
        batch_size=1,
        decode_in_subprocess=False,
    )
    views = 0
    for job_id, (path, options) in zip(ids, clips, strict=True):
        job = setup.store.get_job(job_id)
        assert job is not None and job.status is JobStatus.SUCCEEDED, job
        assert job.progress == 1.0 and job.attempts == 1
        got = setup.store.get_results(job_id)
        assert got is not None
        assert_same_results(got, simple.analyze(path, "tiny", JobOptions(**options)).to_dict())
        views += (
            sum(1 for _ in got["segments"])
            * int(got["options"]["crops"])
            * int(got["options"]["clips_per_segment"])
        )
    assert worker.scheduler.batches < views and worker.scheduler.mixed > 0, "jobs share batches"
    setup.store.close()


def test_one_failing_job_leaves_the_others_alone(
    tmp_path: Path, models: Path, clips: list[tuple[Path, dict[str, Any]]]
) -> None:
    setup = Setup(tmp_path, models, worker_jobs_in_flight=2)
    good = setup.submit(*clips[0])
    bad = setup.submit(clips[1][0], {})
    setup.blobs.path(bad).write_bytes(clips[1][0].read_bytes()[:600] + b"\x00" * 4000)  # cut short
    setup.worker(MultiJobWorker).drain()
    good_job, bad_job = setup.store.get_job(good), setup.store.get_job(bad)
    assert good_job is not None and good_job.status is JobStatus.SUCCEEDED
    assert bad_job is not None and bad_job.status is JobStatus.FAILED and bad_job.error is not None
    assert bad_job.error.code in ("video_unreadable", "no_frames")
    assert bad_job.attempts == 1, "an unreadable video will not change on retry: failed at once"
    setup.store.close()


def test_stopping_releases_every_job_in_flight(tmp_path: Path, models: Path) -> None:
    setup = Setup(tmp_path, models, worker_jobs_in_flight=2, batch_size=1)
    long = write_video(tmp_path / "long.mp4", seconds=20, fps=30, width=64, height=48)
    ids = [setup.submit(long, {"segment_seconds": 0.25}) for _ in range(2)]
    worker: MultiJobWorker = setup.worker(MultiJobWorker)
    while len(worker.active) < 2 or worker.scheduler.batches < 4:
        assert worker.run_once()
    worker.stop()
    assert worker.run_once() is False and worker.active == []
    for job_id in ids:
        job = setup.store.get_job(job_id)
        assert job is not None and job.status is JobStatus.QUEUED and job.attempts == 0, job
    setup.store.close()


@pytest.mark.parametrize("stage", ["scan", "decode"])
@pytest.mark.parametrize(("fault", "code"), [("segfault", "decoder_crashed"), ("oom", "resource_limit")])
def test_a_decoder_fault_fails_its_job_with_its_code_and_the_worker_goes_on(
    tmp_path: Path, models: Path, clips: list[tuple[Path, dict[str, Any]]], fault: str, code: str, stage: str
) -> None:
    setup = Setup(tmp_path, models)
    healthy = setup.analyzer.sandbox
    setup.analyzer.sandbox = SandboxLimits(fault=fault, memory_bytes=1024**3, fault_stage=stage)  # type: ignore[arg-type]
    worker = setup.worker()
    doomed = setup.submit(*clips[0])
    assert worker.run_once()
    job = setup.store.get_job(doomed)
    if code == "resource_limit":  # deterministic: the same file needs the same memory again
        assert job is not None and job.status is JobStatus.FAILED and job.attempts == 1, job
        assert job.error is not None and job.error.code == code
    else:
        assert job is not None and job.status is JobStatus.QUEUED and job.error is not None
        assert job.error.code == code  # retried: attempts are left
        assert worker.run_once()
        job = setup.store.get_job(doomed)
        assert job is not None and job.status is JobStatus.FAILED and job.attempts == 2
        assert job.error is not None and job.error.code == code, "the last attempt keeps the fault's code"
    setup.analyzer.sandbox = healthy
    fine = setup.submit(*clips[3])
    assert worker.run_once()
    job = setup.store.get_job(fine)
    assert job is not None and job.status is JobStatus.SUCCEEDED
    setup.store.close()


def test_a_hanging_decoder_times_out(
    tmp_path: Path, models: Path, clips: list[tuple[Path, dict[str, Any]]]
) -> None:
    setup = Setup(tmp_path, models, decode_timeout_seconds=1.5, decode_timeout_per_video_second=0.0)
    setup.analyzer.sandbox = SandboxLimits(fault="hang", timeout_seconds=1.5, timeout_per_video_second=0.0)
    job_id = setup.submit(*clips[0])
    worker = setup.worker()
    assert worker.run_once() and worker.run_once()
    job = setup.store.get_job(job_id)
    assert job is not None and job.status is JobStatus.FAILED and job.error is not None
    assert job.error.code == "timeout"
    setup.store.close()
