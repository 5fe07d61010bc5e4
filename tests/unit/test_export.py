"""`models export`: ONNX, OpenVINO, TorchScript and torch.export artifacts of x3d_xs and of the
demo model's architecture, verified against PyTorch on random and real (decoded) clips."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from app.__main__ import main
from app.analysis.artifacts import ExportFormat, artifact_path, report_path
from app.analysis.catalog import load_catalog
from app.analysis.export import TIMED, export_model
from app.analysis.export_verification import Runner, random_clips
from app.settings import Settings
from tests.conftest import REPO, write_zoo_checkpoint

ALLOWED = Settings().allowed_format_list
FORMATS = [fmt for fmt in ExportFormat if not fmt.is_tensorflow]  # TensorFlow: test_export_tf.py


@pytest.fixture(scope="module")
def motion_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from app.demo.synthetic import write_scripted_video

    path = tmp_path_factory.mktemp("export-video") / "motion.mp4"
    write_scripted_video(path, [("moving right", 2.0), ("rotating", 2.0), ("flashing", 2.0)], seed=5)
    return path


@pytest.fixture(scope="module")
def x3d_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    models = tmp_path_factory.mktemp("export-x3d")
    write_zoo_checkpoint(models, "x3d_xs", "X3D_XS.pyth", seed=4)
    return models


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real demo model when it is in models/, else its architecture with random weights."""
    models = tmp_path_factory.mktemp("export-demo")
    real = REPO / "models"
    if (real / "manifest.json").is_file() and (real / "demo_motion.pyth").is_file():
        for name in ("manifest.json", "demo_motion.pyth", "demo_motion_labels.json"):
            shutil.copy(real / name, models / name)
        return models
    from pytorchvideo.models.x3d import create_x3d

    from app.demo import clips
    from app.demo.classes import CLASSES

    kwargs = {
        "input_channel": 3,
        "input_clip_length": clips.FRAMES,
        "input_crop_size": clips.CROP,
        "model_num_class": len(CLASSES),
        "depth_factor": 0.5,
        "stem_dim_in": 8,
        "bottleneck_factor": 1.5,
        "head_dim_out": 64,
        "head_activation": None,
    }
    torch.manual_seed(0)
    torch.save({"model_state": create_x3d(**kwargs).state_dict()}, models / "demo_motion.pyth")
    (models / "demo_motion_labels.json").write_text(json.dumps(list(CLASSES)))
    entry = {
        "name": "demo_motion",
        "builder": "pytorchvideo.models.x3d.create_x3d",
        "builder_kwargs": kwargs,
        "weights": "demo_motion.pyth",
        "labels": "demo_motion_labels.json",
        "labelset": "demo-motion",
        "frames": clips.FRAMES,
        "sampling_rate": clips.SAMPLING_RATE,
        "short_side": clips.SHORT_SIDE,
        "crop": clips.CROP,
        "output": "logits",
    }
    (models / "manifest.json").write_text(json.dumps({"models": [entry]}))
    return models


CASES = [
    pytest.param(model, fmt, id=f"{model}-{fmt.value}", marks=[pytest.mark.slow] if heavy else [])
    for model in ("x3d_xs", "demo_motion")
    for fmt in FORMATS
    # x3d_xs tracing and torch.export take 8-20 s on two vCPUs; the demo model's are quick.
    for heavy in [model == "x3d_xs" and fmt is not ExportFormat.ONNX]
]


@pytest.mark.parametrize(("model", "fmt"), CASES)
def test_export_verifies_against_pytorch(
    model: str, fmt: ExportFormat, x3d_dir: Path, demo_dir: Path, motion_video: Path
) -> None:
    models = x3d_dir if model == "x3d_xs" else demo_dir
    spec = load_catalog(models).get(model)
    report = export_model(
        models,
        spec,
        fmt,
        allowed_formats=ALLOWED,
        video=motion_video,
        clips=3,
        precision_videos=[motion_video],
    )
    assert report.passed, report
    assert report.swish_replaced > 0, "X3D's Swish must be swapped for nn.SiLU"
    for cmp in (report.random, report.real):
        assert cmp.clips == 3 and cmp.max_abs_diff <= 1e-4 and cmp.top1_agreement == 1.0
    target = artifact_path(models, spec, fmt)
    assert target.is_file() and target.parent == models
    saved = json.loads(report_path(target).read_text())
    assert saved["passed"] and saved["weights_sha256"] == report.weights_sha256
    if fmt in TIMED:
        assert report.speed is not None and saved["speed"]["rounds"] == 5
        assert saved["speed"]["backend"] == fmt.value
        assert report.speed.torch_ms_per_clip > 0 and report.speed.backend_ms_per_clip > 0
    else:
        assert report.speed is None and saved["speed"] is None, "only what a worker runs is timed (for auto)"
    batch = torch.cat([random_clips(spec, 1, seed=9)[0][0]] * 5)
    assert Runner(fmt, target, ["clip"])(batch).shape[0] == 5, "the batch dimension stays dynamic"


def test_cli_export_reports_and_fails_above_tolerance(
    x3d_dir: Path, motion_video: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VAS_MODELS_DIR", str(x3d_dir))
    args = ["models", "export", "x3d_xs", "--format", "onnx", "--clips", "2", "--video", str(motion_video)]
    assert main([*args, "--rounds", "2"]) == 0
    out = capsys.readouterr().out
    assert "Swish -> nn.SiLU: 26 modules" in out and "top-1 agreement 100%" in out
    assert "speed  (threads 1, batch 1, median of 2): torch " in out and " ms/clip" in out
    assert main([*args, "--no-speed", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["speed"] is None
    assert main([*args, "--atol", "0", "--json"]) == 1, "any difference is above a zero tolerance"
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is False and report["random"]["max_abs_diff"] > 0
    assert not (x3d_dir / "X3D_XS.onnx").exists(), "a failed artifact is removed"
    assert main(["models", "export", "nope", "--format", "onnx"]) == 2
