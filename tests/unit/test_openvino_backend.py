"""The OpenVINO backend: a verified IR of the demo model, run through the real worker with the
same segments and scores as PyTorch; ``auto`` picks the export its report measured fastest
and says why; bf16 only when asked per model; the compiled model cached on disk and, in
``analyze``, compiled while torch imports."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from app.__main__ import main
from app.analysis.artifacts import ExportFormat, artifact_files, artifact_path, cpu_model, report_path
from app.analysis.backends import Backends
from app.analysis.catalog import load_catalog
from app.analysis.engine import Analyzer
from app.analysis.export import export_model
from app.analysis.loader import ModelLoader
from app.analysis.openvino_runtime import (
    CompiledIR,
    EarlyCompile,
    Precision,
    cache_dir_for,
    compile_config,
    cpu_capabilities,
)
from app.analysis.runners import OpenVinoRunner
from app.api.app import create_app
from app.cli.analyze_cmd import _start_compile
from app.errors import WeightsInvalid, WeightsMissing
from app.options import JobOptions
from app.settings import Settings
from tests.conftest import REPO
from tests.integration.conftest import Service, anyio_backend, close_app, make_settings, submit
from tests.unit.test_export_backend import assert_close_results

__all__ = ["anyio_backend"]

ALLOWED = Settings().allowed_format_list
MODEL = "demo_motion"
DEMO_FILES = ("manifest.json", "demo_motion.pyth", "demo_motion_labels.json")
IR_FILES = ("demo_motion.openvino.xml", "demo_motion.openvino.bin", "demo_motion.openvino.xml.json")
ONNX_FILES = ("demo_motion.onnx", "demo_motion.onnx.json")
NATIVE_BF16 = "BF16" in cpu_capabilities()


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from app.demo.synthetic import write_scripted_video

    path = tmp_path_factory.mktemp("ov-video") / "scripted.mp4"
    write_scripted_video(path, [("moving right", 3.0), ("rotating", 3.0)], width=192, height=144, seed=3)
    return path


def demo_dir(target: Path) -> Path:
    """The committed demo model (trained weights: real labels, real score margins)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in DEMO_FILES:
        shutil.copy(REPO / "models" / name, target / name)
    return target


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, scripted: Path) -> Path:
    """The demo model exported to OpenVINO and ONNX, as `models export` does (1 thread, batch 1)."""
    models = demo_dir(tmp_path_factory.mktemp("ov-models"))
    spec = load_catalog(models).get(MODEL)
    for fmt in (ExportFormat.OPENVINO, ExportFormat.ONNX):
        report = export_model(
            models,
            spec,
            fmt,
            allowed_formats=ALLOWED,
            video=scripted,
            clips=2,
            rounds=2,
            precision_videos=[scripted],
        )
        assert report.passed, report
    return models


def copy_of(
    source: Path, target: Path, files: tuple[str, ...] = IR_FILES + ONNX_FILES, **reports: Any
) -> Path:
    """A copy of the exports; ``reports`` maps a format's value to fields set in its report."""
    demo_dir(target)
    for name in files:
        shutil.copy(source / name, target / name)
    for fmt, fields in reports.items():
        path = report_path(artifact_path(target, load_catalog(target).get(MODEL), ExportFormat(fmt)))
        path.write_text(json.dumps(_merge(json.loads(path.read_text()), fields)))
    return target


def _merge(report: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    out = dict(report)
    for key, value in fields.items():
        out[key] = out[key] | value if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def resolve(models: Path, **kwargs: Any) -> tuple[torch.nn.Module, Any]:
    loaded = ModelLoader(models, cache_bytes=0).load(load_catalog(models).get(MODEL))
    return Backends(models, kwargs.pop("choices", {}), **kwargs).resolve(loaded)


def analyzer(models: Path, batch_size: int = 1, **backends: str) -> Analyzer:
    return Analyzer(
        models_dir=models,
        allowed_formats=ALLOWED,
        batch_size=batch_size,
        backends=backends,
        decode_in_subprocess=False,
    )


def test_the_ir_is_verified_timed_and_its_bf16_measured(exported: Path) -> None:
    spec = load_catalog(exported).get(MODEL)
    xml = artifact_path(exported, spec, ExportFormat.OPENVINO)
    report = json.loads(report_path(xml).read_text())
    assert report["passed"] and report["versions"]["openvino"]
    assert report["random"]["max_abs_diff"] <= 1e-4 and report["real"]["top1_agreement"] == 1.0
    assert report["artifact_bytes"] == sum(p.stat().st_size for p in artifact_files(xml))
    assert report["speed"]["backend"] == "openvino" and report["speed"]["backend_ms_per_clip"] > 0
    bf16 = report["bf16"]
    assert bf16["compiled_precision"] == ("bf16" if NATIVE_BF16 else "f32"), bf16
    assert bf16["clips"] > 0 and 0 <= bf16["top1_agreement_with_f32"] <= 1
    assert bf16["f32_ms_per_clip"] == report["speed"]["backend_ms_per_clip"]
    if not NATIVE_BF16:
        assert bf16["top1_agreement_with_f32"] == 1.0 and bf16["max_abs_diff_vs_f32"] == 0.0
        assert "this CPU has no native bf16" in bf16["note"]
    choice = report["frame_choice"]  # torch's frame choice here, for jobs that run without torch
    assert choice["cpu"] == cpu_model() and choice["up_to"] == 4096 and set(choice["differs"]) == {"8"}


@pytest.mark.anyio
async def test_openvino_job_through_the_worker_matches_torch(
    exported: Path, scripted: Path, tmp_path: Path
) -> None:
    """HTTP, a worker, the sandboxed decoder: the job runs on OpenVINO, says so, and its
    segments and scores are PyTorch's within the export tolerance."""
    settings = make_settings(tmp_path, exported, batch_size=4, backends={MODEL: "openvino"})
    app = create_app(settings)
    from app.worker.runner import Worker

    worker = Worker(
        store=app.state.store,
        blobs=app.state.blobs,
        settings=settings,
        analyzer_factory=lambda: Analyzer.from_settings(settings),
    )
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            service = Service(settings, app, client, lambda **_: worker)
            response = await submit(service, scripted, model=MODEL, segment_seconds=1.0, top_k=3)
            assert response.status_code == 202, response.text
            assert worker.run_once() is True
            results = (await client.get(f"/v1/jobs/{response.json()['id']}/results")).json()
    finally:
        close_app(app)
    assert results["provenance"]["backend"] == "openvino", results["provenance"]
    assert results["provenance"]["backend_reason"] == f"set: backends[{MODEL}] = openvino"
    options = JobOptions(segment_seconds=1.0, top_k=3)
    reference = analyzer(exported, 4, **{MODEL: "torch"}).analyze(scripted, MODEL, options).to_dict()
    assert len(results["segments"]) == 6
    assert_close_results(reference, results, atol=1e-4)


@pytest.mark.parametrize(
    ("onnx_ms", "openvino_ms", "picked", "reason"),
    [
        (
            10.0,
            5.0,
            "openvino",
            "auto: openvino 5.0 ms/clip < torch 20.0 ms/clip (4.00x); "
            "onnx 10.0 ms/clip < torch 20.0 ms/clip (2.00x) (export reports)",
        ),
        (
            4.0,
            5.0,
            "onnx",
            "auto: onnx 4.0 ms/clip < torch 20.0 ms/clip (5.00x); "
            "openvino 5.0 ms/clip < torch 20.0 ms/clip (4.00x) (export reports)",
        ),
        (
            5.0,
            5.0,
            "openvino",
            "auto: openvino 5.0 ms/clip < torch 20.0 ms/clip (4.00x); "
            "onnx 5.0 ms/clip < torch 20.0 ms/clip (4.00x) (export reports)",
        ),
        (
            25.0,
            20.0,
            "torch",
            "auto: openvino 20.0 ms/clip >= torch 20.0 ms/clip (1.00x); "
            "onnx 25.0 ms/clip >= torch 20.0 ms/clip (0.80x) (export reports)",
        ),
    ],
    ids=["openvino-fastest", "onnx-fastest", "tie-openvino-first", "none-faster"],
)
def test_auto_runs_the_export_measured_fastest_and_says_why(
    exported: Path, tmp_path: Path, onnx_ms: float, openvino_ms: float, picked: str, reason: str
) -> None:
    models = copy_of(
        exported,
        tmp_path / "m",
        onnx={"speed": {"torch_ms_per_clip": 20.0, "backend_ms_per_clip": onnx_ms}},
        openvino={"speed": {"torch_ms_per_clip": 20.0, "backend_ms_per_clip": openvino_ms}},
    )
    module, choice = resolve(models)
    assert (choice.name, choice.reason) == (picked, reason)
    assert isinstance(module, OpenVinoRunner) == (picked == "openvino")


def test_auto_skips_an_unusable_openvino_export(exported: Path, tmp_path: Path) -> None:
    speeds = {
        "onnx": {"speed": {"torch_ms_per_clip": 20.0, "backend_ms_per_clip": 10.0}},
        "openvino": {"speed": {"torch_ms_per_clip": 20.0, "backend_ms_per_clip": 5.0}},
    }
    tampered = copy_of(exported, tmp_path / "tampered", **speeds)
    weights = tampered / "demo_motion.openvino.bin"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one weight changed after verification
    weights.write_bytes(bytes(data))
    _, choice = resolve(tampered)
    assert choice.name == "onnx"
    assert (
        "openvino: no usable export (demo_motion.openvino.xml changed since its verification" in choice.reason
    )
    failed = copy_of(
        exported, tmp_path / "failed", onnx=speeds["onnx"], openvino=speeds["openvino"] | {"passed": False}
    )
    _, choice = resolve(failed)
    assert choice.name == "onnx" and "openvino.xml did not pass verification" in choice.reason
    only_ir = copy_of(exported, tmp_path / "only-ir", IR_FILES, openvino={"speed": {"threads": 2}})
    _, choice = resolve(only_ir)
    assert (
        choice.name == "torch" and "openvino: the export's speed was measured at 2 threads" in choice.reason
    )


def test_failed_verification_removes_the_ir_and_explicit_openvino_refuses(
    exported: Path, scripted: Path, tmp_path: Path
) -> None:
    models = demo_dir(tmp_path / "failing")
    spec = load_catalog(models).get(MODEL)
    report = export_model(
        models, spec, ExportFormat.OPENVINO, allowed_formats=ALLOWED, video=scripted, clips=1, atol=0
    )
    assert not report.passed and report.random.max_abs_diff > 0
    xml = artifact_path(models, spec, ExportFormat.OPENVINO)
    assert [p.exists() for p in artifact_files(xml)] == [False, False], "graph and weights removed"
    assert json.loads(report_path(xml).read_text())["passed"] is False
    with pytest.raises(
        WeightsMissing, match=f"{MODEL} is set to the openvino backend, but demo_motion.openvino.xml"
    ):
        resolve(models, choices={MODEL: "openvino"})
    failed = copy_of(exported, tmp_path / "failed", IR_FILES, openvino={"passed": False})
    with pytest.raises(WeightsInvalid, match="did not pass verification"):
        resolve(failed, choices={MODEL: "openvino"})
    with pytest.raises(WeightsInvalid, match="runs on CPU"):
        resolve(copy_of(exported, tmp_path / "gpu", IR_FILES), choices={MODEL: "openvino"}, device="cuda")


def test_precision_is_f32_unless_bf16_is_asked_per_model(exported: Path, tmp_path: Path) -> None:
    assert compile_config(1, Precision.F32, None)["INFERENCE_PRECISION_HINT"] == "f32", (
        "explicit: OpenVINO's default is bf16 on CPUs with AMX or AVX512-BF16"
    )
    module, choice = resolve(exported, choices={MODEL: "openvino"})
    assert isinstance(module, OpenVinoRunner) and module.compiled.precision is Precision.F32, (
        "f32 read back from the compiled model (fails without the hint on a bf16 CPU)"
    )
    module, choice = resolve(exported, choices={MODEL: "openvino-bf16"})
    assert isinstance(module, OpenVinoRunner) and module.compiled.requested is Precision.BF16
    if NATIVE_BF16:
        assert (choice.name, choice.reason) == ("openvino-bf16", f"set: backends[{MODEL}] = openvino-bf16")
        assert module.compiled.precision is Precision.BF16
    else:
        assert choice.name == "openvino" and module.compiled.precision is Precision.F32
        assert choice.reason == (
            f"set: backends[{MODEL}] = openvino-bf16 (this CPU has no native bf16, so OpenVINO compiled it to f32)"
        )
    unmeasured = copy_of(exported, tmp_path / "no-bf16", IR_FILES, openvino={"bf16": None})
    with pytest.raises(WeightsInvalid, match="its export report has no bf16 measurement"):
        resolve(unmeasured, choices={MODEL: "openvino-bf16"})
    _, choice = resolve(unmeasured, choices={MODEL: "openvino"})
    assert choice.name == "openvino", "f32 needs no bf16 measurement"


def test_the_compiled_model_is_cached_on_disk_and_never_stale(
    exported: Path, scripted: Path, tmp_path: Path
) -> None:
    xml = artifact_path(exported, load_catalog(exported).get(MODEL), ExportFormat.OPENVINO)
    cache = cache_dir_for(exported)
    assert CompiledIR(xml, threads=1, precision=Precision.F32, cache_dir=cache).loaded_from_cache, (
        "the export compiled it as the worker runs it, into the worker's cache"
    )
    models = demo_dir(tmp_path / "reexport")
    spec = load_catalog(models).get(MODEL)
    kwargs: dict[str, Any] = {"allowed_formats": ALLOWED, "video": scripted, "clips": 1, "speed": False}
    assert export_model(models, spec, ExportFormat.OPENVINO, **kwargs).passed
    xml = artifact_path(models, spec, ExportFormat.OPENVINO)
    first = CompiledIR(xml, threads=1, precision=Precision.F32, cache_dir=cache_dir_for(models))
    assert not first.loaded_from_cache
    xml_mtime_ns = xml.stat().st_mtime_ns
    state = torch.load(models / "demo_motion.pyth", weights_only=True)
    state["model_state"] = {
        k: v * 0.5 if v.is_floating_point() else v for k, v in state["model_state"].items()
    }
    torch.save(state, models / "demo_motion.pyth")  # other weights, the same graph
    assert export_model(models, spec, ExportFormat.OPENVINO, **kwargs).passed
    os.utime(xml, ns=(xml_mtime_ns, xml_mtime_ns))  # OpenVINO's own key: the .xml only, whole seconds
    again = CompiledIR(xml, threads=1, precision=Precision.F32, cache_dir=cache_dir_for(models))
    clip = torch.randn(1, 3, spec.frames, spec.crop, spec.crop)
    reference = ModelLoader(models, cache_bytes=0).load(spec).module
    with torch.inference_mode():
        want = reference(clip)
    assert torch.allclose(torch.from_numpy(again.infer([clip.numpy()])), want, atol=1e-4), "no stale blob"


def test_each_precision_has_its_own_compiled_blob(exported: Path, tmp_path: Path) -> None:
    """OpenVINO's cache key ignores the precision hint: sharing one cache folder, a bf16 compile
    loaded the f32 blob (MViT then crashed in its first inference on an AMX Xeon)."""
    models = copy_of(exported, tmp_path / "precisions", IR_FILES)
    xml = artifact_path(models, load_catalog(models).get(MODEL), ExportFormat.OPENVINO)
    cache = cache_dir_for(models)
    assert not CompiledIR(xml, threads=1, precision=Precision.F32, cache_dir=cache).loaded_from_cache
    bf16 = CompiledIR(xml, threads=1, precision=Precision.BF16, cache_dir=cache)
    assert not bf16.loaded_from_cache, "the bf16 compile took the f32 blob"
    assert CompiledIR(xml, threads=1, precision=Precision.BF16, cache_dir=cache).loaded_from_cache
    assert CompiledIR(xml, threads=1, precision=Precision.F32, cache_dir=cache).loaded_from_cache


def test_analyze_compiles_the_ir_while_torch_imports(
    exported: Path,
    scripted: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    xml = artifact_path(exported, load_catalog(exported).get(MODEL), ExportFormat.OPENVINO)
    for value, expected in (
        ("openvino", (xml, Precision.F32)),
        ("openvino-bf16", (xml, Precision.BF16)),
        ("torch", None),
    ):
        settings = Settings(models_dir=exported, backends={MODEL: value})
        early = _start_compile(settings, MODEL)
        assert ((early.key[0], early.key[2]) if early else None) == expected, value
        if early is not None:
            early.wait()
    settings = Settings(models_dir=exported, backends={MODEL: "openvino"})
    early = _start_compile(settings, MODEL)
    assert isinstance(early, EarlyCompile)
    backends = Backends(exported, {MODEL: "openvino"})
    backends.adopt(early)
    loaded = ModelLoader(exported, cache_bytes=0).load(load_catalog(exported).get(MODEL))
    module, _ = backends.resolve(loaded)
    assert isinstance(module, OpenVinoRunner) and module.compiled is early.result(), (
        "the early compile is used"
    )
    monkeypatch.setenv("VAS_MODELS_DIR", str(exported))
    monkeypatch.setenv("VAS_BACKENDS", json.dumps({MODEL: "openvino"}))
    caplog.clear()
    caplog.set_level(logging.INFO, logger="app.analysis.backends")
    assert main(["analyze", str(scripted), "--model", MODEL, "--json"]) == 0
    provenance = json.loads(capsys.readouterr().out)["provenance"]
    assert provenance["backend"] == "openvino"
    assert "demo_motion.openvino.xml: compiled early, while torch was loading" in caplog.messages


def _cli_in_a_fresh_process(
    models: Path, video: Path, backend: str, *extra: str
) -> tuple[dict[str, Any], bool]:
    """``python -m app analyze --json`` in a new process: its results, and whether it imported torch."""
    code = f"""
import runpy, sys
sys.argv = ["app", "analyze", {str(video)!r}, "--model", {MODEL!r}, "--json", *{list(extra)!r}]
try:
    runpy.run_module("app", run_name="__main__")
except SystemExit as exc:
    assert not exc.code, exc.code
print("torch imported:", "torch" in sys.modules, file=sys.stderr)
"""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "VAS_MODELS_DIR": str(models),
        "VAS_BACKENDS": json.dumps({MODEL: backend}),
        "VAS_LOG_LEVEL": "warning",
    }
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    imported = "torch imported: True" in done.stderr
    assert imported or "torch imported: False" in done.stderr, done.stderr[-2000:]
    return json.loads(done.stdout), imported


def test_analyze_on_an_export_never_imports_torch(exported: Path, scripted: Path) -> None:
    """The clips, scores and sums are arrays: a CLI run on the OpenVINO export gives torch's
    results (within the export tolerance) without importing torch; asked to explain, it does."""
    on_ir, imported = _cli_in_a_fresh_process(exported, scripted, "openvino")
    assert not imported, "a job on the OpenVINO export imported torch"
    assert on_ir["provenance"]["backend"] == "openvino"
    on_torch, imported = _cli_in_a_fresh_process(exported, scripted, "torch")
    assert imported and on_torch["provenance"]["backend"] == "torch"
    assert_close_results(on_ir, on_torch, atol=1e-4)
    explained, imported = _cli_in_a_fresh_process(exported, scripted, "openvino", "--explain")
    assert imported and explained["explanations"], "explaining runs the torch module"


def test_a_torch_module_built_late_still_runs_at_the_set_threads(exported: Path, scripted: Path) -> None:
    """``Analyzer(import_torch=False)`` whose job runs on torch after all: the loader sets the
    torch threads before it builds the module."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        engine = Analyzer(
            models_dir=exported,
            allowed_formats=ALLOWED,
            backends={MODEL: "torch"},
            decode_in_subprocess=False,
            torch_threads=1,
            import_torch=False,
        )
        assert torch.get_num_threads() == 2, "nothing built yet"
        result = engine.analyze(scripted, MODEL, JobOptions())
        assert result.provenance.backend == "torch" and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(previous)


def test_cli_export_prints_speed_bf16_and_what_auto_runs(
    scripted: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    models = demo_dir(tmp_path / "cli")
    monkeypatch.setenv("VAS_MODELS_DIR", str(models))
    args = ["models", "export", MODEL, "--format", "openvino", "--clips", "1", "--video", str(scripted)]
    assert main([*args, "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert f"{MODEL} -> {models / 'demo_motion.openvino.xml'}" in out
    assert "speed  (threads 1, batch 1, median of 1): torch " in out and " ms/clip, openvino " in out
    assert "-> the auto backend runs " in out
    assert "of 32 known-answer clips" in out, "both known-answer videos, 16 clips each"
    assert ("bf16 runs natively" if NATIVE_BF16 else "this CPU has no native bf16") in out
