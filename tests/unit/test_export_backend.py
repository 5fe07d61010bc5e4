"""The ONNX Runtime backend: chosen per model in settings (or by the export's own benchmark
with ``auto``), same results as PyTorch, refuses missing or stale exports when set explicitly.
(OpenVINO beside it: test_openvino_backend.py.)"""

from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from app.analysis.artifacts import ExportFormat, cpu_model
from app.analysis.backends import Backends, Choice
from app.analysis.catalog import load_catalog
from app.analysis.engine import Analyzer
from app.analysis.export import export_model
from app.analysis.loader import LoadedModel, ModelLoader
from app.api.app import create_app
from app.errors import WeightsInvalid, WeightsMissing
from app.options import JobOptions
from app.settings import Settings
from tests.conftest import write_zoo_checkpoint
from tests.integration.conftest import Service, anyio_backend, close_app, make_settings, submit

__all__ = ["anyio_backend"]

ALLOWED = Settings().allowed_format_list
EXPORT_FILES = ("X3D_XS.pyth", "X3D_XS.onnx", "X3D_XS.onnx.json")


@pytest.fixture(scope="module")
def onnx_models(tmp_path_factory: pytest.TempPathFactory, short_clip: Path) -> Path:
    """A real export of random-init x3d_xs, timed as the worker would run it (1 thread, batch 1)."""
    models = tmp_path_factory.mktemp("onnx-backend")
    write_zoo_checkpoint(models, "x3d_xs", "X3D_XS.pyth", seed=11)
    report = export_model(
        models,
        load_catalog(models).get("x3d_xs"),
        ExportFormat.ONNX,
        allowed_formats=ALLOWED,
        video=short_clip,
        clips=2,
        rounds=3,
    )
    assert report.passed
    return models


def with_speed(source: Path, target: Path, **speed: Any) -> Path:
    """A copy of ``source``'s export whose report carries these speed figures (``speed=None``
    in the keywords: no figures at all). The figures are what ``auto`` decides on."""
    target.mkdir(parents=True, exist_ok=True)
    for name in EXPORT_FILES:
        shutil.copy(source / name, target / name)
    report_file = target / "X3D_XS.onnx.json"
    report = json.loads(report_file.read_text())
    report["speed"] = None if speed.get("speed", ...) is None else report["speed"] | speed
    report_file.write_text(json.dumps(report))
    return target


def analyzer(models: Path, default: str = "auto", batch_size: int = 1, **backends: str) -> Analyzer:
    return Analyzer(
        models_dir=models,
        allowed_formats=ALLOWED,
        batch_size=batch_size,
        backends=backends,
        backend_default=default,
        decode_in_subprocess=False,
    )


def loaded_x3d(models: Path) -> LoadedModel:
    return ModelLoader(models, cache_bytes=0).load(load_catalog(models).get("x3d_xs"))


def choice(models: Path, **kwargs: Any) -> Choice:
    return Backends(models, {}, **kwargs).resolve(loaded_x3d(models))[1]


def assert_close_results(a: dict[str, Any], b: dict[str, Any], atol: float = 1e-6) -> None:
    assert len(a["segments"]) == len(b["segments"]) > 0
    for x, y in zip(a["segments"], b["segments"], strict=True):
        assert [lab["class_id"] for lab in x["labels"]][:1] == [lab["class_id"] for lab in y["labels"]][:1]
        scores_x = torch.tensor([lab["score"] for lab in x["labels"]])
        scores_y = torch.tensor([lab["score"] for lab in y["labels"]])
        assert torch.allclose(scores_x, scores_y, atol=atol)


def test_the_export_records_its_speed(onnx_models: Path) -> None:
    speed = json.loads((onnx_models / "X3D_XS.onnx.json").read_text())["speed"]
    assert speed["backend"] == "onnx" and speed["torch_ms_per_clip"] > 0 and speed["backend_ms_per_clip"] > 0
    assert (speed["threads"], speed["batch"], speed["rounds"]) == (1, 1, 3)
    assert speed["host"] == platform.node() and speed["cpu"] == cpu_model() != ""


def test_measuring_restores_the_callers_torch_threads(onnx_models: Path) -> None:
    from app.analysis.artifacts import ExportFormat, artifact_path
    from app.analysis.export_modules import OnnxModule
    from app.analysis.export_speed import measure_speed

    spec = load_catalog(onnx_models).get("x3d_xs")
    loaded = ModelLoader(onnx_models).load(spec)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        session = OnnxModule(artifact_path(onnx_models, spec, ExportFormat.ONNX), ["clip"], 2)
        ms = measure_speed(loaded.module, {"onnx": session}, spec, threads=2, batch=1, rounds=1)
        assert set(ms) == {"torch", "onnx"}
        assert torch.get_num_threads() == 1, "measured at 2 threads, the caller's 1 restored"
    finally:
        torch.set_num_threads(previous)


def test_onnx_results_match_torch(onnx_models: Path, short_clip: Path) -> None:
    options = JobOptions(segment_seconds=1.0, top_k=5)
    torch_out = analyzer(onnx_models, x3d_xs="torch").analyze(short_clip, "x3d_xs", options).to_dict()
    onnx_out = analyzer(onnx_models, x3d_xs="onnx").analyze(short_clip, "x3d_xs", options).to_dict()
    assert torch_out["provenance"]["backend"] == "torch" and onnx_out["provenance"]["backend"] == "onnx"
    assert torch_out["provenance"]["backend_reason"] == "set: backends[x3d_xs] = torch"
    assert onnx_out["provenance"]["backend_reason"] == "set: backends[x3d_xs] = onnx"
    assert len(torch_out["segments"]) == 4
    assert_close_results(torch_out, onnx_out)


def test_auto_runs_onnx_where_the_export_measured_it_faster(
    onnx_models: Path, short_clip: Path, tmp_path: Path
) -> None:
    faster = with_speed(onnx_models, tmp_path / "faster", torch_ms_per_clip=20.0, backend_ms_per_clip=10.0)
    options = JobOptions(segment_seconds=1.0)
    out = analyzer(faster).analyze(short_clip, "x3d_xs", options).to_dict()
    assert out["provenance"]["backend"] == "onnx"
    assert out["provenance"]["backend_reason"] == (
        "auto: onnx 10.0 ms/clip < torch 20.0 ms/clip (2.00x); openvino: not exported (export reports)"
    )
    assert_close_results(
        analyzer(faster, x3d_xs="torch").analyze(short_clip, "x3d_xs", options).to_dict(), out
    )
    explicit = (
        analyzer(faster, default="torch", x3d_xs="auto").analyze(short_clip, "x3d_xs", options).to_dict()
    )
    assert explicit["provenance"]["backend"] == "onnx", "auto per model overrides the default"
    assert choice(faster, device="cuda") == Choice("torch", "auto: the device is cuda (exports run on CPU)")


@pytest.mark.parametrize(
    ("speed", "reason"),
    [
        (
            {"torch_ms_per_clip": 10.0, "backend_ms_per_clip": 12.5},
            "auto: onnx 12.5 ms/clip >= torch 10.0 ms/clip (0.80x); openvino: not exported",
        ),
        (
            {"torch_ms_per_clip": 20.0, "backend_ms_per_clip": 10.0, "threads": 2},
            "measured at 2 threads, batch 1",
        ),
        (
            {"torch_ms_per_clip": 20.0, "backend_ms_per_clip": 10.0, "batch": 8},
            "measured at 1 threads, batch 8",
        ),
        ({"torch_ms_per_clip": 20.0, "backend_ms_per_clip": 10.0, "cpu": "Other CPU"}, "on another CPU"),
        ({"speed": None}, "has no speed figures"),
    ],
    ids=["slower", "other-threads", "other-batch", "other-cpu", "no-figures"],
)
def test_auto_keeps_torch_unless_the_report_says_onnx_is_faster_here(
    onnx_models: Path, tmp_path: Path, speed: dict[str, Any], reason: str
) -> None:
    got = choice(with_speed(onnx_models, tmp_path / "m", **speed))
    assert got.name == "torch" and reason in got.reason, got


def test_auto_keeps_torch_without_a_valid_export(onnx_models: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    write_zoo_checkpoint(bare, "x3d_xs", "X3D_XS.pyth", seed=11)
    got = choice(bare)
    assert got.reason == "auto: openvino: not exported; onnx: not exported (export reports)", got
    stale = with_speed(onnx_models, tmp_path / "stale", torch_ms_per_clip=20.0, backend_ms_per_clip=10.0)
    write_zoo_checkpoint(stale, "x3d_xs", "X3D_XS.pyth", seed=12)  # other weights than the export's
    got = choice(stale)
    assert got.name == "torch"
    assert (
        "onnx: no usable export (X3D_XS.onnx was not verified against the current X3D_XS.pyth" in got.reason
    )
    broken = with_speed(onnx_models, tmp_path / "broken", torch_ms_per_clip=20.0, backend_ms_per_clip=10.0)
    (broken / "X3D_XS.onnx").write_bytes(b"not a model")
    got = choice(broken)
    assert (
        got.name == "torch"
        and "onnx: no usable export (X3D_XS.onnx changed since its verification" in got.reason
    )


def test_missing_or_stale_exports_are_refused(onnx_models: Path, short_clip: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    write_zoo_checkpoint(bare, "x3d_xs", "X3D_XS.pyth", seed=11)
    with pytest.raises(WeightsMissing, match="models export x3d_xs --format onnx"):
        analyzer(bare, x3d_xs="onnx").analyze(short_clip, "x3d_xs", JobOptions())
    with pytest.raises(WeightsMissing, match="x3d_xs is set to the onnx backend"):
        analyzer(bare, default="onnx").analyze(short_clip, "x3d_xs", JobOptions())
    stale = with_speed(onnx_models, tmp_path / "stale", torch_ms_per_clip=20.0, backend_ms_per_clip=10.0)
    write_zoo_checkpoint(stale, "x3d_xs", "X3D_XS.pyth", seed=12)  # other weights than the export's
    with pytest.raises(WeightsInvalid, match=r"not verified against the current X3D_XS\.pyth"):
        analyzer(stale, x3d_xs="onnx").analyze(short_clip, "x3d_xs", JobOptions())


def test_backend_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().backend_default == "auto" and Settings().backends == {}
    monkeypatch.setenv("VAS_BACKENDS", '{"x3d_xs": "onnx", "x3d_s": "torch", "x3d_m": "auto"}')
    monkeypatch.setenv("VAS_BACKEND_DEFAULT", "torch")
    settings = Settings()
    assert settings.backends == {"x3d_xs": "onnx", "x3d_s": "torch", "x3d_m": "auto"}
    assert settings.backend_default == "torch"
    monkeypatch.setenv("VAS_BACKENDS", '{"x3d_xs": "openvino", "x3d_s": "openvino-bf16"}')
    monkeypatch.setenv("VAS_BACKEND_DEFAULT", "openvino")
    assert Settings().backends == {"x3d_xs": "openvino", "x3d_s": "openvino-bf16"}
    assert Settings().backend_default == "openvino"
    monkeypatch.setenv("VAS_BACKEND_DEFAULT", "openvino-bf16")
    with pytest.raises(ValueError):
        Settings()  # bf16 (lossy) only per model, never for every model at once
    monkeypatch.setenv("VAS_BACKEND_DEFAULT", "torch")
    monkeypatch.setenv("VAS_BACKENDS", '{"x3d_xs": "tensorrt"}')
    with pytest.raises(ValueError):
        Settings()
    monkeypatch.setenv("VAS_BACKENDS", "{}")
    monkeypatch.setenv("VAS_BACKEND_DEFAULT", "fastest")
    with pytest.raises(ValueError):
        Settings()


@pytest.mark.anyio
async def test_worker_job_on_auto_runs_the_faster_export(
    onnx_models: Path, short_clip: Path, tmp_path: Path
) -> None:
    """Through HTTP and a worker (sandboxed decode, ``open_task``): the job runs on ONNX
    Runtime, says so in its provenance, and its scores match PyTorch's."""
    models = with_speed(
        onnx_models, tmp_path / "models", torch_ms_per_clip=20.0, backend_ms_per_clip=10.0, batch=4
    )
    settings = make_settings(tmp_path, models, batch_size=4)
    assert settings.backend_default == "auto" and settings.decode_in_subprocess
    app = create_app(settings)
    from app.worker.runner import Worker

    worker = Worker(
        store=app.state.store,
        blobs=app.state.blobs,
        settings=settings,
        analyzer_factory=lambda: Analyzer.from_settings(settings),
    )
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            service = Service(settings, app, client, lambda **_: worker)
            response = await submit(service, short_clip, model="x3d_xs", segment_seconds=1.0)
            assert response.status_code == 202, response.text
            assert worker.run_once() is True
            results = (await client.get(f"/v1/jobs/{response.json()['id']}/results")).json()
    finally:
        close_app(app)
    assert results["provenance"]["backend"] == "onnx", results["provenance"]
    assert results["provenance"]["backend_reason"].startswith(
        "auto: onnx 10.0 ms/clip < torch 20.0 ms/clip (2.00x)"
    )
    reference = (
        analyzer(models, batch_size=4, x3d_xs="torch")
        .analyze(short_clip, "x3d_xs", JobOptions(segment_seconds=1.0))
        .to_dict()
    )
    assert_close_results(reference, results, atol=1e-5)


def overridden(source: Path, target: Path, **fields: Any) -> Path:
    """A copy of ``source``'s passed export with ``models/manifest.json`` overriding x3d_xs."""
    with_speed(source, target, torch_ms_per_clip=20.0, backend_ms_per_clip=10.0)
    entry = {"name": "x3d_xs", **fields}
    (target / "manifest.json").write_text(json.dumps({"models": [entry]}))
    return target


def test_an_export_of_another_clip_size_is_refused(
    onnx_models: Path, short_clip: Path, tmp_path: Path
) -> None:
    """The catalog's 1-crop recipe changed after the export (a manifest override here): the
    export would be fed clips of a size it was not made for, so it is not used."""
    spec = load_catalog(onnx_models).get("x3d_xs")
    smaller = spec.crop - 22
    moved = overridden(onnx_models, tmp_path / "moved", crop=smaller)
    got = choice(moved)
    assert got.name == "torch"
    assert f"was exported for clips of {spec.frames}x{spec.crop}x{spec.crop}" in got.reason, got
    with pytest.raises(WeightsInvalid, match=f"is now {spec.frames}x{smaller}x{smaller}"):
        analyzer(moved, x3d_xs="onnx").analyze(short_clip, "x3d_xs", JobOptions())


def test_three_crops_of_another_size_run_on_torch(
    onnx_models: Path, short_clip: Path, tmp_path: Path
) -> None:
    spec = load_catalog(onnx_models).get("x3d_xs")
    big = spec.crop + 32
    models = overridden(onnx_models, tmp_path / "three", three_crop_size=big)
    options = JobOptions(segment_seconds=1.0, crops=3)
    got = analyzer(models, x3d_xs="onnx").analyze(short_clip, "x3d_xs", options).to_dict()
    assert got["provenance"]["backend"] == "torch"
    assert f"this job's 3-crop views are {big}x{big}" in got["provenance"]["backend_reason"]
    want = analyzer(models, x3d_xs="torch").analyze(short_clip, "x3d_xs", options).to_dict()
    assert_close_results(got, want, atol=0.0)
    one = analyzer(models, x3d_xs="onnx").analyze(short_clip, "x3d_xs", JobOptions(segment_seconds=1.0))
    assert one.to_dict()["provenance"]["backend"] == "onnx", "1-crop jobs still run the export"
