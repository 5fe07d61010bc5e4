"""`models export --format tflite|tf-savedmodel`: TensorFlow ports of x3d_xs and of the
committed demo model, verified against PyTorch on random and real (decoded) clips, each
runtime fed its own layout; a tampered artifact fails and is removed; a layer the converter
lacks is named. Needs the `tf` extra (`make test` installs it)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from app.__main__ import main
from app.analysis.artifacts import ExportFormat, artifact_path, input_names, report_path
from app.analysis.catalog import load_catalog
from app.analysis.export import exportable
from app.analysis.export_verification import random_clips
from app.errors import ExportUnconvertible
from app.settings import Settings
from tests.conftest import REPO, skip_or_fail, write_zoo_checkpoint
from tests.import_graph import ImportGraph

ALLOWED = Settings().allowed_format_list
TF_FORMATS = [fmt for fmt in ExportFormat if fmt.is_tensorflow]
TF_MODULES = ("tensorflow", "ai_edge_litert")


@pytest.fixture(autouse=True)
def _needs_tensorflow() -> None:
    missing = [m for m in TF_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        skip_or_fail(f"{', '.join(missing)} not installed (the tf extra: pip install -e '.[tf]')")


@pytest.fixture(scope="module")
def motion_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from app.demo.synthetic import write_scripted_video

    path = tmp_path_factory.mktemp("tf-video") / "motion.mp4"
    write_scripted_video(path, [("moving right", 2.0), ("rotating", 2.0), ("flashing", 2.0)], seed=5)
    return path


@pytest.fixture(scope="module")
def x3d_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    models = tmp_path_factory.mktemp("tf-x3d")
    write_zoo_checkpoint(models, "x3d_xs", "X3D_XS.pyth", seed=4)
    return models


@pytest.fixture
def demo_dir(tmp_path: Path) -> Path:
    """The committed demo model (trained weights, logits out)."""
    for name in ("manifest.json", "demo_motion.pyth", "demo_motion_labels.json"):
        shutil.copy(REPO / "models" / name, tmp_path / name)
    return tmp_path


def _export(models: Path, model: str, fmt: ExportFormat, video: Path, **kw: object) -> object:
    from app.analysis.export_tf import export_tf_model

    spec = load_catalog(models).get(model)
    return export_tf_model(models, spec, fmt, allowed_formats=ALLOWED, video=video, clips=2, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", TF_FORMATS, ids=lambda f: f.value)
@pytest.mark.parametrize("model", ["x3d_xs", "demo_motion"])
def test_tf_port_verifies_against_pytorch_on_random_and_real_clips(
    model: str, fmt: ExportFormat, x3d_dir: Path, demo_dir: Path, motion_video: Path
) -> None:
    from app.analysis.export_tf import TfRunner
    from app.analysis.loader import ModelLoader

    models = x3d_dir if model == "x3d_xs" else demo_dir
    spec = load_catalog(models).get(model)
    report = _export(models, model, fmt, motion_video)
    assert report.passed, report  # type: ignore[attr-defined]
    for cmp in (report.random, report.real):  # type: ignore[attr-defined]
        assert cmp.clips == 2 and cmp.max_abs_diff <= 1e-4 and cmp.top1_agreement == 1.0
    target = artifact_path(models, spec, fmt)
    assert target.exists() and target.parent == models
    saved = json.loads(report_path(target).read_text())
    assert saved["passed"] and saved["input_layout"] == "NTHWC"
    assert saved["input_shapes"] == {"clip": [None, spec.frames, spec.crop, spec.crop, 3]}
    assert saved["versions"]["tensorflow"].startswith("2.")

    # Each runtime gets its own layout: the artifact takes (N, T, H, W, C), a batch of any size.
    clips = torch.cat([random_clips(spec, 1, seed=s)[0][0] for s in (7, 8, 9)])
    runner = TfRunner(fmt, target, input_names(spec))
    reference = ModelLoader(models, cache_bytes=0).load(spec).module.eval()
    with torch.inference_mode():
        want = reference(clips)
    got = runner(clips)
    assert got.shape == want.shape == (3, want.shape[1])
    assert float((got - want).abs().max()) <= 1e-4
    with pytest.raises(Exception):  # noqa: B017 - TensorFlow and LiteRT raise their own types
        runner.run(clip=clips.numpy())  # channels-first, as PyTorch takes it: refused


@pytest.mark.parametrize("fmt", TF_FORMATS, ids=lambda f: f.value)
def test_a_tampered_artifact_fails_verification_and_is_removed(
    fmt: ExportFormat, demo_dir: Path, motion_video: Path
) -> None:
    from app.analysis.export_tf import verify_tf_artifact, write_tf_artifact
    from app.analysis.loader import ModelLoader

    spec = load_catalog(demo_dir).get("demo_motion")
    loaded = ModelLoader(demo_dir, cache_bytes=0).load(spec)
    reference = loaded.module.eval()
    tampered, swapped = exportable(reference, spec)
    with torch.no_grad():
        proj = tampered.model.blocks[-1].proj
        proj.weight.copy_(proj.weight.flip(0))  # each class gets another class's weights
    target = artifact_path(demo_dir, spec, fmt)
    write_tf_artifact(tampered, spec, fmt, target)
    assert target.exists()
    report = verify_tf_artifact(
        reference,
        spec,
        fmt,
        target,
        allowed_formats=ALLOWED,
        video=motion_video,
        clips=2,
        atol=1e-4,
        weights_sha256=loaded.sha256,
        swish_replaced=swapped,
        export_seconds=0.0,
    )
    assert not report.passed and report.random.max_abs_diff > 1e-2 and report.real.top1_agreement < 1
    assert not target.exists(), "a failed artifact is removed"
    assert json.loads(report_path(target).read_text())["passed"] is False


class RunningTotal(nn.Module):
    """A cumulative sum over time: ONNX ``CumSum``, which the TensorFlow port has no version of."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cumsum(x, dim=2)


class WithRunningTotal(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.running_total = RunningTotal()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(self.running_total(x))
        return out


@pytest.mark.parametrize("fmt", TF_FORMATS, ids=lambda f: f.value)
def test_a_layer_the_converter_lacks_is_reported_by_name(fmt: ExportFormat, demo_dir: Path) -> None:
    from app.analysis.export_tf import write_tf_artifact
    from app.analysis.loader import ModelLoader

    spec = load_catalog(demo_dir).get("demo_motion")
    module, _ = exportable(ModelLoader(demo_dir, cache_bytes=0).load(spec).module, spec)
    module.model.blocks[1] = WithRunningTotal(module.model.blocks[1])
    target = artifact_path(demo_dir, spec, fmt)
    with pytest.raises(ExportUnconvertible) as caught:
        write_tf_artifact(module, spec, fmt, target)
    assert caught.value.code == "export_unconvertible"
    assert caught.value.extra == {"layer": "model/blocks.1/running_total", "op": "CumSum"}
    assert "layer model/blocks.1/running_total (ONNX CumSum)" in caught.value.detail
    assert sorted(p.name for p in demo_dir.iterdir()) == sorted(
        ["manifest.json", "demo_motion.pyth", "demo_motion_labels.json"]
    ), "nothing half-written is left behind"


class SizesFromTheInput(nn.Module):
    """Reshapes computed from the input's shape, as MViT's attention does: with a dynamic
    batch TensorFlow cannot tell the channel count the next convolution needs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, h, w = x.shape
        return x.reshape(n, c, t * h * w).reshape(n, c, t, h, w)


def test_a_model_whose_sizes_follow_the_input_shape_is_ported_with_a_batch_of_one(
    demo_dir: Path, motion_video: Path
) -> None:
    from app.analysis.export_tf import verify_tf_artifact, write_tf_artifact
    from app.analysis.loader import ModelLoader

    spec = load_catalog(demo_dir).get("demo_motion")
    module, _ = exportable(ModelLoader(demo_dir, cache_bytes=0).load(spec).module, spec)
    module.model.blocks[1] = nn.Sequential(SizesFromTheInput(), module.model.blocks[1])
    fmt = ExportFormat.TF_SAVEDMODEL
    target = artifact_path(demo_dir, spec, fmt)
    write_tf_artifact(module, spec, fmt, target)
    report = verify_tf_artifact(
        module,
        spec,
        fmt,
        target,
        allowed_formats=ALLOWED,
        video=motion_video,
        clips=1,
        atol=1e-4,
        weights_sha256="",
        swish_replaced=0,
        export_seconds=0.0,
    )
    assert report.passed, report
    assert report.input_shapes == {"clip": [1, spec.frames, spec.crop, spec.crop, 3]}


class Erf(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.erf(x)


def test_a_tensorflow_op_without_a_tflite_builtin_is_reported_with_its_layer(demo_dir: Path) -> None:
    """A lone erf becomes ``tf.Erf``, which TFLite has no builtin for (PyTorch's exact GELU,
    whose export contains one, is fused into TFLite's GELU and converts)."""
    from app.analysis.export_tf import write_tf_artifact
    from app.analysis.loader import ModelLoader

    spec = load_catalog(demo_dir).get("demo_motion")
    target = artifact_path(demo_dir, spec, ExportFormat.TFLITE)
    for activation, fails in ((Erf(), True), (nn.GELU(), False)):
        module, _ = exportable(ModelLoader(demo_dir, cache_bytes=0).load(spec).module, spec)
        module.model.blocks[1] = nn.Sequential(module.model.blocks[1], activation)
        if not fails:
            write_tf_artifact(module, spec, ExportFormat.TFLITE, target)
            assert target.is_file()
            continue
        with pytest.raises(ExportUnconvertible) as caught:
            write_tf_artifact(module, spec, ExportFormat.TFLITE, target)
        assert caught.value.extra == {"layer": "model/blocks.1/blocks.1.1", "op": "tf.Erf"}, (
            caught.value.detail
        )
        assert not target.exists()


def test_cli_exports_says_the_layout_and_fails_above_tolerance(
    demo_dir: Path, motion_video: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VAS_MODELS_DIR", str(demo_dir))
    args = [
        "models",
        "export",
        "demo_motion",
        "--format",
        "tflite",
        "--clips",
        "1",
        "--video",
        str(motion_video),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    spec = load_catalog(demo_dir).get("demo_motion")
    shape = f"clip (N, {spec.frames}, {spec.crop}, {spec.crop}, 3)"
    assert f"input  layout NTHWC (PyTorch: NCTHW): {shape}" in out and "top-1 agreement 100%" in out
    assert main([*args, "--atol", "0", "--json"]) == 1, "any difference is above a zero tolerance"
    captured = capsys.readouterr()
    assert json.loads(captured.out)["passed"] is False and "the artifact was removed" in captured.err
    assert not (demo_dir / "demo_motion.tflite").exists()
    assert main(["models", "export", "nope", "--format", "tf-savedmodel"]) == 2


def test_the_api_and_the_worker_never_reach_tensorflow() -> None:
    """Statically (function-level imports count): no module the API or the worker can import
    imports TensorFlow, so neither process ever loads it (nor the runtime image needs it)."""
    graph = ImportGraph.of(REPO, "app", skip=("migrations",))
    uses_tf = {
        name
        for name, path in graph.modules.items()
        if any(f"import {m}" in path.read_text() or f"from {m}" in path.read_text() for m in TF_MODULES)
    }
    assert {"app.analysis.onnx_to_tf", "app.analysis.export_tf"} <= uses_tf
    reached: set[str] = set()
    todo = [m for m in graph.modules if m.startswith(("app.api", "app.worker"))]
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo.extend(graph.edges[module])
    assert not reached & uses_tf, sorted(reached & uses_tf)
