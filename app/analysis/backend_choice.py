"""Which backend a model runs on, decided from settings and the export reports (no torch
here: the CLI reads the decision before torch has loaded, to start compiling early).

Settings name a backend per model (``VAS_BACKENDS``, else ``VAS_BACKEND_DEFAULT``):
``torch``, ``onnx`` (ONNX Runtime), ``openvino`` (f32), ``openvino-bf16`` (bf16 where the
CPU has it: the only lossy choice, so only when asked per model), or ``auto``.

``auto`` reads every export of the weights file loaded (ONNX and OpenVINO) whose report
passed verification for that very file and whose speed figures were measured at this
worker's thread count and batch size on this CPU model. Each report timed its backend
against PyTorch in one interleaved run, so the figures compare as speed-ups over PyTorch:
the backend with the largest speed-up runs, if it is faster than PyTorch at all; otherwise
PyTorch does. Only a CPU device considers exports; ties go to the order of ``EXPORTED``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.analysis.artifacts import ExportFormat, artifact_files, artifact_path, artifacts_sha256, report_path
from app.errors import WeightsInvalid, WeightsMissing

if TYPE_CHECKING:
    from app.analysis.spec import ModelSpec


class Backend(StrEnum):
    TORCH = "torch"
    ONNX = "onnx"
    OPENVINO = "openvino"
    OPENVINO_BF16 = "openvino-bf16"
    AUTO = "auto"

    @property
    def export_format(self) -> ExportFormat | None:
        """The artifact this backend runs (None: the weights themselves)."""
        if self is Backend.ONNX:
            return ExportFormat.ONNX
        if self in (Backend.OPENVINO, Backend.OPENVINO_BF16):
            return ExportFormat.OPENVINO
        return None


EXPORTED = (Backend.OPENVINO, Backend.ONNX)
"""What ``auto`` considers besides PyTorch (never bf16: a lossy precision is only run when asked)."""


@dataclass(frozen=True)
class Choice:
    """The backend a model runs on, and why (both go into the results' provenance)."""

    name: str
    reason: str


def setting_for(model: str, choices: Mapping[str, str], default: str) -> tuple[Backend, str]:
    """The configured backend for ``model`` (``choices``: ``VAS_BACKENDS``, ``default``:
    ``VAS_BACKEND_DEFAULT``) and which setting it comes from."""
    if model in choices:
        return Backend(choices[model]), f"backends[{model}]"
    return Backend(default), "backend_default"


def export_command(model: str, fmt: ExportFormat) -> str:
    return f"run `python -m app models export {model} --format {fmt.value}`"


def verified_export(
    models_dir: Path, spec: ModelSpec, fmt: ExportFormat, weights_sha256: str | None
) -> tuple[Path, dict[str, Any]]:
    """The artifact of ``spec``'s weights in ``fmt`` and its report; raises when there is none,
    when its report did not pass for this very weights file (``weights_sha256``), or when
    its files changed since. ``weights_sha256`` None: an early guess before the weights are
    hashed, which checks neither (the real decision re-checks both)."""
    path = artifact_path(models_dir, spec, fmt)
    how = export_command(spec.name, fmt)
    if not path.is_file():
        raise WeightsMissing(f"{path.name} is not in {models_dir}: {how}")
    try:
        report: dict[str, Any] = json.loads(report_path(path).read_text())
    except (OSError, ValueError) as exc:
        raise WeightsInvalid(f"{path.name} has no readable verification report: {how}") from exc
    if not isinstance(report, dict) or not report.get("passed"):
        raise WeightsInvalid(f"{path.name} did not pass verification: {how}")
    if weights_sha256 is None:
        return path, report
    if report.get("weights_sha256") != weights_sha256:
        raise WeightsInvalid(f"{path.name} was not verified against the current {spec.weights}: {how}")
    if report.get("artifact_sha256") != artifacts_sha256(artifact_files(path)):
        raise WeightsInvalid(f"{path.name} changed since its verification: {how}")
    if report.get("clip_shape") != [spec.frames, spec.crop, spec.crop]:
        raise WeightsInvalid(
            f"{path.name} was exported for clips of {_shape(report.get('clip_shape'))}; the catalog's "
            f"recipe for {spec.name} is now {spec.frames}x{spec.crop}x{spec.crop}: {how}"
        )
    return path, report


def _shape(value: Any) -> str:
    if isinstance(value, list) and value:
        return "x".join(str(v) for v in value)
    return "an unrecorded size (an export older than this check)"


@dataclass(frozen=True)
class Measured:
    """One export's own timing against PyTorch, as ``auto`` reads it."""

    backend: Backend
    path: Path
    ms: float
    torch_ms: float

    @property
    def speedup(self) -> float:
        return self.torch_ms / self.ms if self.ms > 0 else 0.0

    def describe(self) -> str:
        sign = "<" if self.ms < self.torch_ms else ">="
        return (
            f"{self.backend} {self.ms:.1f} ms/clip {sign} torch {self.torch_ms:.1f} ms/clip "
            f"({self.speedup:.2f}x)"
        )


def read_speed(speed: Any, *, threads: int, batch: int, cpu: str) -> tuple[float, float] | str:
    """(backend ms, torch ms) per clip from a report's ``speed``, or why they do not hold here."""
    if not isinstance(speed, dict):
        return "the export report has no speed figures (exported with --no-speed?)"
    measured = (speed.get("threads"), speed.get("batch"))
    if measured != (threads, batch):
        return (
            f"the export's speed was measured at {measured[0]} threads, batch {measured[1]}; "
            f"this worker runs {threads} threads, batch {batch} (re-run models export)"
        )
    if speed.get("cpu") and cpu and speed["cpu"] != cpu:
        return f"the export's speed was measured on another CPU ({speed['cpu']})"
    try:
        return float(speed["backend_ms_per_clip"]), float(speed["torch_ms_per_clip"])
    except (KeyError, TypeError, ValueError):
        return "the export report's speed figures are unreadable"


def auto_ranking(
    models_dir: Path, spec: ModelSpec, weights_sha256: str | None, *, threads: int, batch: int, cpu: str
) -> tuple[list[Measured], list[str]]:
    """The exports faster than PyTorch here, fastest (largest speed-up) first, and one note
    per exported backend saying what its report showed or why it does not count."""
    faster: list[Measured] = []
    notes: list[tuple[float, str]] = []
    for backend in EXPORTED:
        fmt = backend.export_format
        assert fmt is not None
        try:
            path, report = verified_export(models_dir, spec, fmt, weights_sha256)
        except WeightsMissing:
            notes.append((-1.0, f"{backend}: not exported"))
            continue
        except WeightsInvalid as exc:
            notes.append((-1.0, f"{backend}: no usable export ({exc.detail})"))
            continue
        figures = read_speed(report.get("speed"), threads=threads, batch=batch, cpu=cpu)
        if isinstance(figures, str):
            notes.append((-1.0, f"{backend}: {figures}"))
            continue
        measured = Measured(backend, path, *figures)
        notes.append((measured.speedup, measured.describe()))
        if measured.ms < measured.torch_ms:
            faster.append(measured)
    faster.sort(key=lambda m: -m.speedup)  # stable: ties keep EXPORTED's order
    notes.sort(key=lambda n: -n[0])
    return faster, [note for _, note in notes]


def auto_reason(notes: list[str], *, prefix: str = "") -> str:
    return f"auto: {prefix}{'; '.join(notes)} (export reports)"


def likely_openvino(
    models_dir: Path, spec: ModelSpec, value: Backend, *, threads: int, batch: int, cpu: str
) -> Path | None:
    """The OpenVINO IR this setting will most likely run, judged before the weights are
    hashed (the real decision re-checks them), so that its compile can start early."""
    if value in (Backend.OPENVINO, Backend.OPENVINO_BF16):
        try:
            return verified_export(models_dir, spec, ExportFormat.OPENVINO, None)[0]
        except (WeightsMissing, WeightsInvalid):
            return None
    if value is Backend.AUTO:
        faster, _ = auto_ranking(models_dir, spec, None, threads=threads, batch=batch, cpu=cpu)
        if faster and faster[0].backend is Backend.OPENVINO:
            return faster[0].path
    return None
