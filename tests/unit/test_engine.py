"""Analyzer.analyze end to end: real videos, zoo-format random-init checkpoints, the normal loader."""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from app.analysis.catalog import load_catalog
from app.analysis.engine import Analyzer
from app.errors import NoFrames, UnknownModel, VideoUnreadable, WeightsMissing
from app.options import JobOptions
from app.settings import Settings
from tests.conftest import write_zoo_checkpoint
from tests.media import write_video

ALLOWED = Settings().allowed_format_list


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, zoo_models_dir: Path) -> Path:
    models = tmp_path_factory.mktemp("engine-models")
    shutil.copy(zoo_models_dir / "X3D_XS.pyth", models / "X3D_XS.pyth")
    return models


def in_process(models_dir: Path, **kwargs: Any) -> Analyzer:
    """Decoding in this process: every batch fills before it runs and every batch reports
    progress, so batch and progress counts are exact (the sandboxed decoder's depend on timing)."""
    return Analyzer(
        models_dir=models_dir,
        allowed_formats=ALLOWED,
        decode_in_subprocess=False,
        progress_interval=0.0,
        **kwargs,
    )


@pytest.fixture(scope="module")
def analyzer(models: Path) -> Analyzer:
    return in_process(models)


@pytest.fixture(scope="module")
def clip25(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("v") / "c25.mp4", seconds=4, fps=25, width=96, height=64)


def check_payload(result: dict[str, Any], duration: float, top_k: int = 5) -> None:
    assert json.loads(json.dumps(result)) == result
    segments = result["segments"]
    assert segments[0]["start"] == result["options"]["start"]
    assert segments[-1]["end"] == pytest.approx(duration)
    for a, b in itertools.pairwise(segments):
        assert a["end"] == pytest.approx(b["start"])
    for seg in segments:
        scores = [label["score"] for label in seg["labels"]]
        assert all(isinstance(s, float) and 0 <= s <= 1 for s in scores)
        assert scores == sorted(scores, reverse=True) and len(scores) <= top_k
        assert sum(scores) <= 1 + 1e-6
        assert all(
            isinstance(seg[key], float) for key in ("start", "end", "first_frame_time", "last_frame_time")
        )
    summary = [label["score"] for label in result["summary"]]
    assert summary == sorted(summary, reverse=True) and sum(summary) <= 1 + 1e-6
    expected_runs: list[tuple[int, float, float]] = []
    for seg in segments:
        top = seg["labels"][0]["class_id"]
        if expected_runs and expected_runs[-1][0] == top:
            expected_runs[-1] = (top, expected_runs[-1][1], seg["end"])
        else:
            expected_runs.append((top, seg["start"], seg["end"]))
    assert [(r["class_id"], r["start"], r["end"]) for r in result["runs"]] == expected_runs


def test_x3d_on_25fps_video(analyzer: Analyzer, models: Path, clip25: Path) -> None:
    progress: list[float] = []
    result = analyzer.analyze(clip25, "x3d_xs", JobOptions(), progress.append).to_dict()
    check_payload(result, 4.0)
    assert result["model"] == "x3d_xs" and result["labelset"] == "kinetics400"
    assert [(s["start"], s["end"]) for s in result["segments"]] == [(0.0, 1.5), (1.5, 3.0), (3.0, 4.0)]
    assert result["options"] == {
        "segment_seconds": 1.5,
        "stride_seconds": 1.5,
        "clips_per_segment": 1,
        "crops": 1,
        "start": 0.0,
        "end": 4.0,
        "top_k": 5,
        "min_score": 0.0,
        "segments": None,
        "segmentation": "fixed",
        "max_segment_seconds": 10.0,
        "detect_shots": False,
        "explain": False,
    }
    for seg in result["segments"]:
        center = (seg["start"] + seg["end"]) / 2
        window = (min(max(center - 0.8, 0.0), 4.0 - 1.6), min(max(center - 0.8, 0.0), 4.0 - 1.6) + 1.6)
        assert window[0] <= seg["first_frame_time"] <= seg["last_frame_time"] < window[1]
        assert seg["first_frame_time"] * 25 == pytest.approx(round(seg["first_frame_time"] * 25))
    video = result["video"]
    assert (video["width"], video["height"], video["fps"], video["frames"], video["rotation"]) == (
        96,
        64,
        25.0,
        100,
        0,
    )
    assert video["duration"] == pytest.approx(4.0) and video["codec"] == "h264"
    assert progress == sorted(progress) and progress[-1] == 1.0 and len(progress) == 1
    provenance = result["provenance"]
    assert provenance["weights_sha256"] == hashlib.sha256((models / "X3D_XS.pyth").read_bytes()).hexdigest()
    assert provenance["weights_file"] == "X3D_XS.pyth" and len(provenance["preprocessing_hash"]) == 64
    assert set(provenance["versions"]) == {"torch", "torchvision", "pytorchvideo", "av", "app"}


def test_vfr_video_times(analyzer: Analyzer, tmp_path: Path) -> None:
    stamps = [0.0]
    for i in range(90):
        stamps.append(round(stamps[-1] + (0.02, 0.05, 0.08)[i % 3], 5))
    path = write_video(tmp_path / "vfr.mkv", timestamps=stamps, width=64, height=48)
    result = analyzer.analyze(path, "x3d_xs", JobOptions(segment_seconds=1.0, top_k=3)).to_dict()
    check_payload(result, result["video"]["duration"], top_k=3)
    for seg in result["segments"]:
        for key in ("first_frame_time", "last_frame_time"):
            assert min(abs(seg[key] - s) for s in stamps) < 1e-3


def test_three_crops_two_clips_and_progress(analyzer: Analyzer, clip25: Path) -> None:
    progress: list[float] = []
    analyzer.batch_size = 4
    try:
        result = analyzer.analyze(
            clip25, "x3d_xs", JobOptions(crops=3, clips_per_segment=2, start=0.5, end=3.5), progress.append
        ).to_dict()
    finally:
        analyzer.batch_size = 8
    check_payload(result, 3.5)
    assert result["segments"][0]["start"] == 0.5 and len(result["segments"]) == 2
    assert len(progress) == 3 and progress == sorted(progress) and progress[-1] == 1.0  # 12 views / 4


def test_min_score_filters_labels_and_breaks_runs(analyzer: Analyzer, clip25: Path) -> None:
    result = analyzer.analyze(clip25, "x3d_xs", JobOptions(min_score=0.9)).to_dict()
    assert all(seg["labels"] == [] for seg in result["segments"])
    assert result["summary"] == [] and result["runs"] == []


def test_progress_exception_propagates(analyzer: Analyzer, clip25: Path) -> None:
    class Stop(Exception):
        pass

    def on_progress(fraction: float) -> None:
        raise Stop

    with pytest.raises(Stop):
        analyzer.analyze(clip25, "x3d_xs", JobOptions(), on_progress)


def test_coded_errors(analyzer: Analyzer, clip25: Path, tmp_path: Path) -> None:
    with pytest.raises(UnknownModel):
        analyzer.analyze(clip25, "nope", JobOptions())
    with pytest.raises(WeightsMissing, match=r"X3D_M\.pyth"):
        analyzer.analyze(clip25, "x3d_m", JobOptions())
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 1000)
    with pytest.raises(VideoUnreadable):
        analyzer.analyze(junk, "x3d_xs", JobOptions())
    with pytest.raises(NoFrames):
        analyzer.analyze(clip25, "x3d_xs", JobOptions(start=10))


def test_from_settings_and_logit_model(tmp_path: Path, clip25: Path) -> None:
    write_zoo_checkpoint(tmp_path, "efficient_x3d_xs", "tmp.pyth")
    state = torch.load(tmp_path / "tmp.pyth", weights_only=True)["model_state"]
    torch.save(state, tmp_path / "efficient_x3d_xs_original_form.pyth")
    analyzer = Analyzer.from_settings(Settings(models_dir=tmp_path))
    assert analyzer.device == "cpu" and analyzer.batch_size == Settings().batch_size
    result = analyzer.analyze(clip25, "efficient_x3d_xs", JobOptions(top_k=50)).to_dict()
    check_payload(result, 4.0, top_k=50)


@pytest.mark.slow
def test_slowfast_runs_and_does_not_mutate_its_inputs(tmp_path: Path, clip25: Path) -> None:
    write_zoo_checkpoint(tmp_path, "slowfast_r50", "SLOWFAST_8x8_R50.pyth")
    analyzer = in_process(tmp_path, batch_size=2)
    module = analyzer.loader.load(load_catalog(tmp_path).get("slowfast_r50")).module
    seen: list[tuple[list[torch.Tensor], list[torch.Tensor]]] = []
    module.register_forward_pre_hook(lambda m, args: seen.append((args[0], list(args[0]))))
    result = analyzer.analyze(clip25, "slowfast_r50", JobOptions(segment_seconds=2.0)).to_dict()
    check_payload(result, 4.0)
    assert len(seen) == 1
    given, snapshot = seen[0]
    assert [t.shape for t in given] == [(2, 3, 8, 256, 256), (2, 3, 32, 256, 256)]
    assert all(a is b for a, b in zip(given, snapshot, strict=True))


@pytest.mark.slow
def test_mvit_fixed_input(tmp_path: Path, clip25: Path) -> None:
    write_zoo_checkpoint(tmp_path, "mvit_base_16x4", "MVIT_B_16x4.pyth")
    analyzer = in_process(tmp_path)
    result = analyzer.analyze(clip25, "mvit_base_16x4", JobOptions(segment_seconds=4.0)).to_dict()
    check_payload(result, 4.0)
    assert len(result["segments"]) == 1


def test_manifest_model_with_its_own_labels(tmp_path: Path, clip25: Path) -> None:
    """A demo-style manifest entry: create_x3d with custom kwargs, 3 classes, logits, own labels."""
    from app.analysis.loader import build_model

    kwargs = {"input_clip_length": 8, "input_crop_size": 112, "model_num_class": 3, "depth_factor": 0.5}
    kwargs |= {"width_factor": 1.0, "stem_dim_in": 8, "bottleneck_factor": 1.5, "head_dim_out": 64}
    entry = {
        "name": "demo_motion",
        "builder": "pytorchvideo.models.x3d.create_x3d",
        "builder_kwargs": {**kwargs, "head_activation": None},
        "weights": "demo_motion.pyth",
        "labels": "demo_motion_labels.json",
        "labelset": "demo-motion",
        "frames": 8,
        "sampling_rate": 4,
        "short_side": 112,
        "crop": 112,
        "output": "logits",
        "demo": True,
    }
    (tmp_path / "manifest.json").write_text(json.dumps({"models": [entry]}))
    (tmp_path / "demo_motion_labels.json").write_text(json.dumps(["left", "right", "still"]))
    spec = load_catalog(tmp_path).get("demo_motion")
    torch.save({"model_state": build_model(spec).state_dict()}, tmp_path / "demo_motion.pyth")
    result = in_process(tmp_path).analyze(clip25, "demo_motion", JobOptions()).to_dict()
    check_payload(result, 4.0, top_k=3)
    assert result["labelset"] == "demo-motion" and result["options"]["segment_seconds"] == 1.0
    for seg in result["segments"]:
        assert {x["label"] for x in seg["labels"]} == {"left", "right", "still"}
        assert sum(x["score"] for x in seg["labels"]) == pytest.approx(1.0)


def test_on_segments_reports_each_segment_once_before_progress(analyzer: Analyzer, clip25: Path) -> None:
    events: list[tuple[str, Any]] = []
    analyzer.batch_size = 2
    try:
        result = analyzer.analyze(
            clip25,
            "x3d_xs",
            JobOptions(segment_seconds=1.0, crops=3),
            lambda f: events.append(("progress", f)),
            on_segments=lambda segs: events.append(("segments", segs)),
        ).to_dict()
    finally:
        analyzer.batch_size = 8
    reported = [seg.to_dict() for kind, segs in events if kind == "segments" for seg in segs]
    assert reported == result["segments"]
    assert events[-1] == ("progress", 1.0) and events[-2][0] == "segments"


def test_media_limits_hold_in_the_worker_too(models: Path, clip25: Path) -> None:
    from app.analysis.limits import MediaLimits
    from app.errors import FrameTooLarge, VideoTooLong

    short = in_process(models, limits=MediaLimits(max_duration_seconds=2.0))
    with pytest.raises(VideoTooLong):
        short.analyze(clip25, "x3d_xs", JobOptions())
    small = Analyzer.from_settings(Settings(models_dir=models, max_frame_pixels=96 * 64 - 1))
    with pytest.raises(FrameTooLarge):
        small.analyze(clip25, "x3d_xs", JobOptions())
