"""The AVA detection zoo path end to end: random-init checkpoints in the zoo's format
(slow_r50_detection) and torchvision's (Faster R-CNN), loaded through the user's path (the
models dir and its manifest), run on a real file from tests/data through HTTP and the worker.

With random weights the detector finds nobody (its scores stay under torchvision's 0.05
floor), so the results are checked for form there; the caller's ``boxes`` give people, so
detections, tracks and every format are checked for content."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.api.app import create_app
from tests.conftest import write_zoo_checkpoint
from tests.integration.conftest import assert_problem, close_app, finished_job, make_settings

DATA = Path(__file__).resolve().parent.parent / "data"
VIDEO = DATA / "mmaction2_demo.mp4"  # 10 s, 340x256, people arm wrestling
DETECTOR = "fasterrcnn_resnet50_fpn_coco"
DETECTOR_FILE = "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth"
AVA_NAMES = {
    e["id"]: e["name"] for e in json.loads((DATA.parent.parent / "app/analysis/labels/ava.json").read_text())
}
BOXES = [
    {"time": 1.0, "boxes": [[0.05, 0.1, 0.45, 0.95], [0.55, 0.1, 0.95, 0.95]]},
    {"time": 2.0, "boxes": [[0.06, 0.1, 0.46, 0.95], [0.56, 0.12, 0.95, 0.95]]},
    {"time": 3.0, "boxes": [[0.07, 0.1, 0.47, 0.95]]},
]


@pytest.fixture(scope="module")
def ava_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """slow_r50_detection (zoo format) and Faster R-CNN (torchvision's bare state dict), random
    init; a manifest entry of the user's own that uses the detection builder; X3D-XS."""
    import torch
    import torchvision

    models = tmp_path_factory.mktemp("ava_models")
    write_zoo_checkpoint(models, "slow_r50_detection", "SLOW_4x16_R50_DETECTION.pyth")
    write_zoo_checkpoint(models, "x3d_xs", "X3D_XS.pyth")
    torch.manual_seed(0)
    detector = torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    torch.save(detector.state_dict(), models / DETECTOR_FILE)
    entries = [
        {
            "name": "my_ava",
            "builder": "pytorchvideo.models.hub.slow_r50_detection",
            "weights": "SLOW_4x16_R50_DETECTION.pyth",
            "task": "detection",
            "output": "probabilities",
            "labelset": "ava",
            "frames": 4,
            "sampling_rate": 16,
            "person_detector": DETECTOR,
        },
        {
            "name": "ava_no_detector",
            "builder": "pytorchvideo.models.hub.slow_r50_detection",
            "weights": "SLOW_4x16_R50_DETECTION.pyth",
            "task": "detection",
            "labelset": "ava",
            "output": "probabilities",
            "frames": 4,
            "sampling_rate": 16,
        },
    ]
    (models / "manifest.json").write_text(json.dumps({"models": entries}))
    return models


def _check_detection(found: dict[str, Any], top_k: int, min_score: float) -> None:
    assert set(found) == {"time", "box", "person_score", "track_id", "labels"}
    x1, y1, x2, y2 = found["box"]
    assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1
    assert isinstance(found["track_id"], int) and found["track_id"] >= 1
    assert len(found["labels"]) <= top_k
    scores = [label["score"] for label in found["labels"]]
    assert scores == sorted(scores, reverse=True) and all(min_score <= s <= 1 for s in scores)
    for label in found["labels"]:
        assert AVA_NAMES[label["class_id"]] == label["label"]  # AVA's own ids


@pytest.mark.anyio
async def test_caller_boxes_give_people_actions_tracks_and_every_format(
    tmp_path: Path, ava_models: Path
) -> None:
    data = {"model": "slow_r50_detection", "boxes": json.dumps(BOXES), "min_score": "0.0", "top_k": "4"}
    results, texts = await finished_job(tmp_path, ava_models, VIDEO, data, "csv", "vtt", "srt", "jsonl")
    assert results["task"] == "detection" and results["labelset"] == "ava"
    assert results["person_source"] == "boxes" and results["keyframes"] == [1.0, 2.0, 3.0]
    detections = results["detections"]
    given = [(entry["time"], box) for entry in BOXES for box in entry["boxes"]]
    assert [(d["time"], d["box"]) for d in detections] == given
    for found in detections:
        _check_detection(found, 4, 0.0)
        assert found["person_score"] is None and len(found["labels"]) == 4
    # the left person is one track over three keyframes, the right one another over two
    left = {d["track_id"] for d in detections if d["box"][0] < 0.5}
    right = {d["track_id"] for d in detections if d["box"][0] > 0.5}
    assert len(left) == len(right) == 1 and left != right
    tracks = {t["id"]: t for t in results["tracks"]}
    assert set(tracks) == left | right
    assert (tracks[left.pop()]["start"], tracks[right.pop()]["end"]) == (1.0, 2.0)
    for track in tracks.values():
        for run in track["runs"]:
            assert track["start"] <= run["start"] <= run["end"] <= track["end"]
            assert AVA_NAMES[run["class_id"]] == run["label"]
    rows = list(csv.DictReader(io.StringIO(texts["csv"])))
    assert len(rows) == sum(len(d["labels"]) for d in detections)
    assert {(float(r["time"]), int(r["track_id"])) for r in rows} == {
        (d["time"], d["track_id"]) for d in detections
    }
    assert texts["vtt"].startswith("WEBVTT") and texts["vtt"].count(" --> ") == 3
    assert f"#{detections[0]['track_id']} {detections[0]['labels'][0]['label']}" in texts["vtt"]
    assert texts["srt"].count(" --> ") == 3
    lines = [json.loads(line) for line in texts["jsonl"].splitlines()]
    assert lines[: len(detections)] == detections
    assert [line["track"] for line in lines[len(detections) :]] == results["tracks"]


@pytest.mark.anyio
async def test_detector_path_on_a_video_without_found_people_returns_empty_lists(
    tmp_path: Path, ava_models: Path
) -> None:
    """The user's own manifest entry on the slow_r50_detection builder (once a worker crash:
    ``forward() missing 'bboxes'``) with the Faster R-CNN stage: a success, empty lists."""
    data = {"model": "my_ava", "end": "2.5"}
    results, texts = await finished_job(tmp_path, ava_models, VIDEO, data, "csv", "vtt")
    assert results["task"] == "detection" and results["person_source"] == DETECTOR
    assert results["keyframes"] == [0.5, 1.5]
    assert results["detections"] == [] and results["tracks"] == []
    assert results["options"]["person_min_score"] == 0.8 and results["options"]["min_score"] == 0.3
    assert texts["csv"].splitlines() == ["time,track_id,x1,y1,x2,y2,person_score,rank,label,class_id,score"]
    assert texts["vtt"].strip() == "WEBVTT"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fields", "code", "words"),
    [
        ({"model": "ava_no_detector"}, "invalid_options", "no person detector"),
        ({"model": "x3d_xs", "boxes": json.dumps(BOXES)}, "invalid_options", "boxes are for detection"),
        ({"model": DETECTOR}, "invalid_options", "person detector"),
        ({"model": "slow_r50_detection", "boxes": '[{"time": 11, "boxes": []}]'}, "invalid_options", "after"),
        (
            {"model": "slow_r50_detection", "boxes": '[{"time": 1, "boxes": [[0.5, 0, 0.4, 1]]}]'},
            "invalid_options",
            "x1 < x2",
        ),
        (
            {"model": "slow_r50_detection", "boxes": '[{"time": 1, "boxes": [[0, 0, 1.5, 1]]}]'},
            "invalid_options",
            "boxes",
        ),
        ({"model": "slowfast_r50_detection", "boxes": json.dumps(BOXES)}, "weights_missing", "models fetch"),
        ({"model": "slow_r50_detection", "keyframe_seconds": "0.04"}, "invalid_options", "keyframes"),
    ],
)
async def test_refused_at_submission(
    tmp_path: Path, ava_models: Path, fields: dict[str, str], code: str, words: str
) -> None:
    settings = make_settings(tmp_path, ava_models, max_segments_per_job=100)
    app = create_app(settings)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            with VIDEO.open("rb") as fh:
                response = await client.post(
                    "/v1/jobs", files={"file": (VIDEO.name, fh, "video/mp4")}, data=fields
                )
            body = assert_problem(response, 422, code)
            assert words in body["detail"]
            assert (await client.get("/v1/jobs")).json()["items"] == []
    finally:
        close_app(app)


def test_a_multi_job_worker_runs_a_detection_job_beside_a_classifier(
    tmp_path: Path, ava_models: Path
) -> None:
    """The detection task shares the scheduler with a classification task (one batch of
    keyframes per step): both succeed, and the detections are those of the job run alone."""
    import uuid

    from app.analysis.engine import Analyzer
    from app.analysis.probe import probe_video
    from app.blobs import LocalBlobStore
    from app.domain import JobStatus, NewJob
    from app.options import JobOptions
    from app.store.factory import open_store
    from app.worker.multi import MultiJobWorker

    settings = make_settings(tmp_path, ava_models, worker_jobs_in_flight=2, batch_size=2, poll_interval=0.05)
    store, blobs = open_store(settings), LocalBlobStore(settings.videos_dir)
    analyzer = Analyzer.from_settings(settings)
    jobs = {}
    for model, options in (("slow_r50_detection", {"boxes": BOXES, "min_score": 0.0}), ("x3d_xs", {})):
        job_id = uuid.uuid4().hex
        writer = blobs.writer(job_id)
        writer.write(VIDEO.read_bytes())
        writer.commit()
        info = probe_video(
            blobs.path(job_id), filename=VIDEO.name, allowed_formats=settings.allowed_format_list
        )
        store.create_job(
            NewJob(id=job_id, model=model, options=options, video=info, blob_key=job_id, max_attempts=1)
        )
        jobs[model] = job_id
    worker = MultiJobWorker(store=store, blobs=blobs, settings=settings, analyzer_factory=lambda: analyzer)
    worker.drain()
    for job_id in jobs.values():
        job = store.get_job(job_id)
        assert job is not None and job.status is JobStatus.SUCCEEDED, job
    together = store.get_results(jobs["slow_r50_detection"])
    alone = analyzer.analyze(VIDEO, "slow_r50_detection", JobOptions(boxes=BOXES, min_score=0.0)).to_dict()
    assert together is not None and together["detections"] == alone["detections"]
    assert together["tracks"] == alone["tracks"] and len(together["detections"]) == 5
    store.close()
