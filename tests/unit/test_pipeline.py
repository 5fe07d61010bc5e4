"""The sandboxed decoder gives the results that decoding in process gives (one engine path,
the scheduler batching either), and the scheduler shares batches across tasks."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from app.analysis.catalog import load_catalog
from app.analysis.engine import Analyzer
from app.analysis.limits import MediaLimits
from app.analysis.loader import build_model
from app.errors import FrameTooLarge, NoFrames, VideoTooLong, VideoUnreadable
from app.options import JobOptions
from app.settings import Settings
from tests.media import write_video

ALLOWED = Settings().allowed_format_list
SCORE_TOLERANCE = 1e-4
TINY = {
    "name": "tiny",
    "builder": "pytorchvideo.models.x3d.create_x3d",
    "builder_kwargs": {
        "input_clip_length": 6,
        "input_crop_size": 64,
        "model_num_class": 7,
        "depth_factor": 0.5,
        "width_factor": 1.0,
        "stem_dim_in": 8,
        "bottleneck_factor": 1.5,
        "head_dim_out": 32,
        "head_activation": None,
    },
    "weights": "tiny.pyth",
    "labels": "tiny_labels.json",
    "labelset": "tiny",
    "frames": 6,
    "sampling_rate": 5,
    "short_side": 72,
    "crop": 64,
    "three_crop_size": 72,
    "output": "logits",
}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny logit model (well separated scores, fast) next to the zoo's x3d_xs."""
    folder = tmp_path_factory.mktemp("pipeline-models")
    (folder / "manifest.json").write_text(json.dumps({"models": [TINY]}))
    (folder / "tiny_labels.json").write_text(json.dumps([f"class {i}" for i in range(7)]))
    torch.manual_seed(0)
    model = build_model(load_catalog(folder).get("tiny"))
    torch.save({"model_state": model.state_dict()}, folder / "tiny.pyth")
    return folder


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pipeline-videos")
    stamps = [0.0]
    for i in range(100):
        stamps.append(round(stamps[-1] + (0.02, 0.05, 0.08)[i % 3], 5))
    bframes = {"preset": "fast", "bf": "3", "g": "30"}
    return {
        "cfr25": write_video(folder / "cfr25.mp4", seconds=4, fps=25, width=96, height=64),
        "cfr30": write_video(folder / "cfr30.mp4", seconds=3, fps=30, width=64, height=96),
        "vfr": write_video(folder / "vfr.mkv", timestamps=stamps, width=64, height=48),
        "rotated": write_video(folder / "rotated.mp4", seconds=2.5, width=80, height=48, rotation=270),
        "odd": write_video(folder / "odd.mkv", seconds=2.5, width=97, height=71, codec="mpeg4"),
        "bframes": write_video(
            folder / "bframes.mp4", seconds=4, fps=30, width=96, height=64, options=bframes
        ),
    }


def analyzers(models: Path, batch_size: int, **kwargs: Any) -> tuple[Analyzer, Analyzer]:
    """(decoding in process, decoding in the sandboxed child)."""
    simple = Analyzer(
        models_dir=models, allowed_formats=ALLOWED, batch_size=batch_size, decode_in_subprocess=False
    )
    piped = Analyzer(
        models_dir=models, allowed_formats=ALLOWED, batch_size=batch_size, decode_in_subprocess=True, **kwargs
    )
    return simple, piped


def assert_same_results(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got["video"] == want["video"] and got["options"] == want["options"]
    timings = got["provenance"].pop("timings")
    want["provenance"].pop("timings", None)
    assert got["provenance"] == want["provenance"]
    assert timings["decode_seconds"] >= 0 and timings["inference_seconds"] > 0
    assert len(got["segments"]) == len(want["segments"])
    for g, w in zip(got["segments"], want["segments"], strict=True):
        assert {k: v for k, v in g.items() if k != "labels"} == {k: v for k, v in w.items() if k != "labels"}
        assert [x["class_id"] for x in g["labels"]] == [x["class_id"] for x in w["labels"]]
        for a, b in zip(g["labels"], w["labels"], strict=True):
            assert a["score"] == pytest.approx(b["score"], abs=SCORE_TOLERANCE)
    assert [x["class_id"] for x in got["summary"]] == [x["class_id"] for x in want["summary"]]
    assert [(r["class_id"], r["start"], r["end"]) for r in got["runs"]] == [
        (r["class_id"], r["start"], r["end"]) for r in want["runs"]
    ]


CASES = [
    ("cfr25", {}, 1),
    ("cfr25", {"crops": 3, "clips_per_segment": 2, "start": 0.5, "end": 3.7}, 4),
    ("cfr30", {"segment_seconds": 0.5, "stride_seconds": 0.25}, 3),
    ("vfr", {"segment_seconds": 1.0}, 8),
    ("rotated", {"crops": 3}, 2),
    ("odd", {"clips_per_segment": 3}, 5),
    ("bframes", {}, 8),
]


@pytest.mark.parametrize(
    ("video", "options", "batch_size"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_same_results_as_the_simple_path(
    models: Path, videos: dict[str, Path], video: str, options: dict[str, Any], batch_size: int
) -> None:
    simple, piped = analyzers(models, batch_size)
    want = simple.analyze(videos[video], "tiny", JobOptions(**options)).to_dict()
    got = piped.analyze(videos[video], "tiny", JobOptions(**options)).to_dict()
    assert_same_results(got, want)


def test_zoo_model_scores_match(models: Path, videos: dict[str, Path], zoo_models_dir: Path) -> None:
    (models / "X3D_XS.pyth").write_bytes((zoo_models_dir / "X3D_XS.pyth").read_bytes())
    simple, piped = analyzers(models, 8)
    want = simple.analyze(videos["cfr25"], "x3d_xs", JobOptions(top_k=50)).to_dict()
    got = piped.analyze(videos["cfr25"], "x3d_xs", JobOptions(top_k=50)).to_dict()
    for g, w in zip(got["segments"], want["segments"], strict=True):
        scores = {x["class_id"]: x["score"] for x in w["labels"]}
        shared = [x for x in g["labels"] if x["class_id"] in scores]  # near-ties may swap at the edge
        assert len(shared) >= 40
        assert all(x["score"] == pytest.approx(scores[x["class_id"]], abs=SCORE_TOLERANCE) for x in shared)
        assert g["labels"][0]["score"] == pytest.approx(w["labels"][0]["score"], abs=SCORE_TOLERANCE)


def test_segments_stream_before_progress(models: Path, videos: dict[str, Path]) -> None:
    _, piped = analyzers(models, 2)
    piped.progress_interval = 0.0
    events: list[tuple[str, Any]] = []
    result = piped.analyze(
        videos["cfr25"],
        "tiny",
        JobOptions(segment_seconds=0.5, crops=3),
        lambda f: events.append(("progress", f)),
        on_segments=lambda segs: events.append(("segments", segs)),
    ).to_dict()
    reported = [seg.to_dict() for kind, segs in events if kind == "segments" for seg in segs]
    assert reported == result["segments"]
    progress = [f for kind, f in events if kind == "progress"]
    assert progress == sorted(progress) and progress[-1] == 1.0 and len(progress) > 3
    assert events[-1] == ("progress", 1.0) and events[-2][0] == "segments"


CHILD = b"app.analysis.sandbox_child"


def decode_children() -> list[int]:
    """This process's decode children started for a job (their ring's descriptor on the command
    line); spares other tests' workers keep waiting (``-1``: not started for a job) are not."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            argv = cmdline.split(b"\0")
            ours = int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid() and CHILD in argv
            if ours and argv[argv.index(CHILD) + 2] != b"-1":
                found.append(int(entry.name))
    return found


def test_a_raising_callback_stops_the_decoder(models: Path, videos: dict[str, Path]) -> None:
    class Stop(Exception):
        pass

    def on_progress(fraction: float) -> None:
        raise Stop

    _, piped = analyzers(models, 1)
    with pytest.raises(Stop):
        piped.analyze(videos["cfr25"], "tiny", JobOptions(segment_seconds=0.5), on_progress)
    assert decode_children() == []


def test_coded_errors(models: Path, videos: dict[str, Path], tmp_path: Path) -> None:
    _, piped = analyzers(models, 4)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 1000)
    with pytest.raises(VideoUnreadable):
        piped.analyze(junk, "tiny", JobOptions())
    with pytest.raises(NoFrames):
        piped.analyze(videos["cfr25"], "tiny", JobOptions(start=10))
    piped.limits = MediaLimits(max_duration_seconds=2.0)
    with pytest.raises(VideoTooLong):
        piped.analyze(videos["cfr25"], "tiny", JobOptions())
    piped.limits = MediaLimits(max_frame_pixels=96 * 64 - 1)
    with pytest.raises(FrameTooLarge):
        piped.analyze(videos["cfr25"], "tiny", JobOptions())
    assert decode_children() == []


def test_fast_mode_skips_non_reference_frames(models: Path, videos: dict[str, Path]) -> None:
    simple, piped = analyzers(models, 8, fast_decode_min_seconds=3.5)
    want = simple.analyze(videos["bframes"], "tiny", JobOptions()).to_dict()
    got = piped.analyze(videos["bframes"], "tiny", JobOptions()).to_dict()
    assert got["video"]["fast_decode"] is True and "fast_decode" not in want["video"]
    assert got["video"]["decoded_frames"] < want["video"]["decoded_frames"] <= got["video"]["frames"] == 120
    assert got["video"]["substituted_frames"] > 0
    assert [s["start"] for s in got["segments"]] == [s["start"] for s in want["segments"]]
    for g, w in zip(got["segments"], want["segments"], strict=True):
        assert abs(g["first_frame_time"] - w["first_frame_time"]) <= 2 / 30 + 1e-6
    short = piped.analyze(videos["cfr30"], "tiny", JobOptions()).to_dict()
    assert "fast_decode" not in short["video"]


def test_tasks_share_batches_and_fail_alone(models: Path, videos: dict[str, Path]) -> None:
    simple, piped = analyzers(models, 4, batch_max_wait=0.5)
    names = ["cfr25", "vfr", "odd"]
    want = {n: simple.analyze(videos[n], "tiny", JobOptions()).to_dict() for n in names}
    want3 = simple.analyze(videos["cfr30"], "tiny", JobOptions(crops=3)).to_dict()

    class Stop(Exception):
        pass

    def stop(fraction: float) -> None:
        raise Stop

    tasks = {n: piped.open_task(videos[n], "tiny", JobOptions()) for n in names}
    tasks["crops3"] = piped.open_task(videos["cfr30"], "tiny", JobOptions(crops=3))
    tasks["stopped"] = piped.open_task(videos["rotated"], "tiny", JobOptions(), stop)
    scheduler = piped.scheduler()
    try:
        scheduler.run(list(tasks.values()))
    finally:
        for task in tasks.values():
            task.close()
    for name in names:
        result = tasks[name].result
        assert result is not None and tasks[name].error is None
        assert_same_results(result.to_dict(), want[name])
    crops3 = tasks["crops3"].result
    assert crops3 is not None
    assert_same_results(crops3.to_dict(), want3)
    assert isinstance(tasks["stopped"].error, Stop) and tasks["stopped"].result is None
    views = sum(t.total for n, t in tasks.items() if n != "stopped")
    assert scheduler.batches < views and scheduler.mixed > 0, "views of several tasks share batches"
    assert decode_children() == []


def test_an_adopted_early_decoder_is_used(models: Path, videos: dict[str, Path]) -> None:
    from app.analysis.decode_sandbox import DecodeSandbox, SandboxLimits
    from app.analysis.prep import FramePrep

    simple, piped = analyzers(models, 2)
    piped.sandbox = SandboxLimits()
    spec = load_catalog(models).get("tiny")
    options = JobOptions(crops=3)
    early = DecodeSandbox(
        videos["cfr25"], ALLOWED, piped.limits, FramePrep.for_spec(spec, 3), spec.frames, limits=piped.sandbox
    )
    other = DecodeSandbox(videos["vfr"], ALLOWED, piped.limits, FramePrep.for_spec(spec, 3), spec.frames)
    piped.adopt(other)
    piped.adopt(early)
    try:
        got = piped.analyze(videos["cfr25"], "tiny", options).to_dict()
        assert early.exhausted and early.stats is not None
        assert piped._adopted == [other], "only the matching decoder is taken"
    finally:
        early.close()
        other.close()
    assert_same_results(got, simple.analyze(videos["cfr25"], "tiny", options).to_dict())
