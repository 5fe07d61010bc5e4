"""The ONNX Runtime backend: chosen per model in settings, same results as PyTorch,
refuses missing or stale exports."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from app.analysis.catalog import load_catalog
from app.analysis.engine import Analyzer
from app.analysis.export import ExportFormat, export_model
from app.errors import WeightsInvalid, WeightsMissing
from app.options import JobOptions
from app.settings import Settings
from tests.conftest import write_zoo_checkpoint

ALLOWED = Settings().allowed_format_list


@pytest.fixture(scope="module")
def onnx_models(tmp_path_factory: pytest.TempPathFactory, short_clip: Path) -> Path:
    models = tmp_path_factory.mktemp("onnx-backend")
    write_zoo_checkpoint(models, "x3d_xs", "X3D_XS.pyth", seed=11)
    report = export_model(
        models,
        load_catalog(models).get("x3d_xs"),
        ExportFormat.ONNX,
        allowed_formats=ALLOWED,
        video=short_clip,
        clips=2,
    )
    assert report.passed
    return models


def analyzer(models: Path, **backends: str) -> Analyzer:
    return Analyzer(models_dir=models, allowed_formats=ALLOWED, batch_size=4, backends=backends)


def test_onnx_results_match_torch(onnx_models: Path, short_clip: Path) -> None:
    options = JobOptions(segment_seconds=1.0, top_k=5)
    torch_out = analyzer(onnx_models).analyze(short_clip, "x3d_xs", options)
    onnx_out = analyzer(onnx_models, x3d_xs="onnx").analyze(short_clip, "x3d_xs", options)
    assert torch_out["provenance"]["backend"] == "torch" and onnx_out["provenance"]["backend"] == "onnx"
    assert len(onnx_out["segments"]) == len(torch_out["segments"]) == 4
    for a, b in zip(torch_out["segments"], onnx_out["segments"], strict=True):
        assert [x["class_id"] for x in a["labels"]][:1] == [x["class_id"] for x in b["labels"]][:1]
        scores_a = torch.tensor([x["score"] for x in a["labels"]])
        scores_b = torch.tensor([x["score"] for x in b["labels"]])
        assert torch.allclose(scores_a, scores_b, atol=1e-6)


def test_missing_or_stale_exports_are_refused(onnx_models: Path, short_clip: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    write_zoo_checkpoint(bare, "x3d_xs", "X3D_XS.pyth", seed=11)
    with pytest.raises(WeightsMissing, match="models export x3d_xs --format onnx"):
        analyzer(bare, x3d_xs="onnx").analyze(short_clip, "x3d_xs", JobOptions())
    stale = tmp_path / "stale"
    stale.mkdir()
    for name in ("X3D_XS.onnx", "X3D_XS.onnx.json"):
        (stale / name).write_bytes((onnx_models / name).read_bytes())
    write_zoo_checkpoint(stale, "x3d_xs", "X3D_XS.pyth", seed=12)  # other weights than the export's
    with pytest.raises(WeightsInvalid, match=r"not verified against the current X3D_XS\.pyth"):
        analyzer(stale, x3d_xs="onnx").analyze(short_clip, "x3d_xs", JobOptions())


def test_backends_setting_is_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAS_BACKENDS", '{"x3d_xs": "onnx", "x3d_s": "torch"}')
    assert Settings().backends == {"x3d_xs": "onnx", "x3d_s": "torch"}
    monkeypatch.setenv("VAS_BACKENDS", '{"x3d_xs": "tensorrt"}')
    with pytest.raises(ValueError):
        Settings()
