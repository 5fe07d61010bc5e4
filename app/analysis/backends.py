"""Inference backends. ``torch`` runs the loaded module; ``onnx`` runs the model's
verified ONNX export (``models export NAME --format onnx``) with ONNX Runtime on CPU;
``auto`` (the default) lets the export's own benchmark decide.

A backend is a module: a batch tensor (or SlowFast's ``[slow, fast]``) in, a
``(batch, classes)`` tensor out, so the classifier needs no change. The ONNX file is
only used when its verification report passed for the very weights file loaded.
``onnx`` set explicitly fails the job without such an export (naming the command to
run); ``auto`` uses it only on a CPU device and only when the report's speed figures,
measured at the worker's thread count and batch size on the same CPU model, show ONNX
Runtime faster, and runs the same weights in PyTorch otherwise. Per model with
``VAS_BACKENDS='{"x3d_xs": "onnx"}'``; unlisted models follow ``VAS_BACKEND_DEFAULT``.
The choice and its reason go into each result's provenance.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from app.analysis.artifacts import ExportFormat, artifact_path, cpu_model, input_names, report_path
from app.analysis.loader import LoadedModel
from app.errors import WeightsInvalid, WeightsMissing

TORCH, ONNX, AUTO = "torch", "onnx", "auto"

log = logging.getLogger(__name__)


class OnnxModule(nn.Module):
    """An ONNX Runtime session behind the ``nn.Module`` call convention."""

    def __init__(self, path: Path, input_names: list[str], threads: int = 1) -> None:
        super().__init__()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = input_names

    def forward(self, x: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        paths = x if isinstance(x, list) else [x]
        feeds = {
            name: p.detach().to("cpu", torch.float32).contiguous().numpy()
            for name, p in zip(self.input_names, paths, strict=True)
        }
        return torch.from_numpy(self.session.run(None, feeds)[0])


def verified_export(models_dir: Path, loaded: LoadedModel) -> tuple[Path, dict[str, Any]]:
    """The ONNX artifact of the weights loaded and its report; raises when there is none,
    or when its report did not pass for this very weights file."""
    spec = loaded.spec
    path = artifact_path(models_dir, spec, ExportFormat.ONNX)
    how = f"run `python -m app models export {spec.name} --format onnx`"
    if not path.is_file():
        raise WeightsMissing(f"{path.name} is not in {models_dir}: {how}")
    try:
        report: dict[str, Any] = json.loads(report_path(path).read_text())
    except (OSError, ValueError) as exc:
        raise WeightsInvalid(f"{path.name} has no readable verification report: {how}") from exc
    if not isinstance(report, dict) or not report.get("passed"):
        raise WeightsInvalid(f"{path.name} did not pass verification: {how}")
    if report.get("weights_sha256") != loaded.sha256:
        raise WeightsInvalid(f"{path.name} was not verified against the current {spec.weights}: {how}")
    return path, report


def onnx_module(models_dir: Path, loaded: LoadedModel, threads: int = 1) -> OnnxModule:
    """The session of a verified export; raises (naming the command to run) without one."""
    try:
        path, _ = verified_export(models_dir, loaded)
    except (WeightsMissing, WeightsInvalid) as exc:
        raise type(exc)(f"{loaded.spec.name} is set to the onnx backend, but {exc.detail}") from None
    return OnnxModule(path, input_names(loaded.spec), threads)


@dataclass(frozen=True)
class Choice:
    """The backend a model runs on, and why (both go into the results' provenance)."""

    name: str
    reason: str


def speed_verdict(speed: Any, *, threads: int, batch: int, cpu: str) -> Choice:
    """``auto``'s reading of an export report's ``speed`` figures for this worker."""
    if not isinstance(speed, dict):
        return Choice(TORCH, "auto: the export report has no speed figures (exported with --no-speed?)")
    measured = (speed.get("threads"), speed.get("batch"))
    if measured != (threads, batch):
        return Choice(
            TORCH,
            f"auto: the export's speed was measured at {measured[0]} threads, batch {measured[1]}; "
            f"this worker runs {threads} threads, batch {batch} (re-run models export)",
        )
    if speed.get("cpu") and cpu and speed["cpu"] != cpu:
        return Choice(TORCH, f"auto: the export's speed was measured on another CPU ({speed['cpu']})")
    try:
        onnx_ms, torch_ms = float(speed["onnx_ms_per_clip"]), float(speed["torch_ms_per_clip"])
    except (KeyError, TypeError, ValueError):
        return Choice(TORCH, "auto: the export report's speed figures are unreadable")
    faster = onnx_ms < torch_ms
    figures = f"onnx {onnx_ms:.1f} ms/clip {'<' if faster else '>='} torch {torch_ms:.1f} ms/clip"
    return Choice(ONNX if faster else TORCH, f"auto: {figures} (export report)")


class Backends:
    """Picks each model's backend from settings (``auto``: from its export report); the
    choice and any ONNX session are kept per weights file version."""

    def __init__(
        self,
        models_dir: Path,
        choices: Mapping[str, str],
        *,
        default: str = AUTO,
        threads: int = 1,
        batch: int = 1,
        device: str = "cpu",
    ) -> None:
        self.models_dir, self.choices, self.default = models_dir, dict(choices), default
        self.threads, self.batch, self.device = threads, batch, device
        self._decided: dict[tuple[str, str], tuple[Choice, OnnxModule | None]] = {}
        """Per weights file version: the choice, and the ONNX session when it is ONNX."""
        self._lock = threading.Lock()

    def setting_for(self, model: str) -> tuple[str, str]:
        """The configured value for ``model`` and where it comes from."""
        if model in self.choices:
            return self.choices[model], f"backends[{model}]"
        return self.default, "backend_default"

    def resolve(self, loaded: LoadedModel) -> tuple[nn.Module, Choice]:
        """The module to run for ``loaded`` and the choice behind it (decided once per weights
        file version; the torch module itself stays the loader's, under its memory bound)."""
        key = (loaded.spec.name, loaded.sha256)
        with self._lock:
            if key not in self._decided:
                choice, session = self._decided[key] = self._decide(loaded)
                log.info(
                    "inference backend for %s: %s (%s)",
                    loaded.spec.name,
                    choice.name,
                    choice.reason,
                    extra={"model": loaded.spec.name, "backend": choice.name},
                )
            choice, session = self._decided[key]
            return (session if session is not None else loaded.module), choice

    def _decide(self, loaded: LoadedModel) -> tuple[Choice, OnnxModule | None]:
        name = loaded.spec.name
        value, source = self.setting_for(name)
        if value == TORCH:
            return Choice(TORCH, f"set: {source} = torch"), None
        if value == ONNX:
            if self.device != "cpu":
                raise WeightsInvalid(f"the onnx backend runs on CPU; {name} is set up for {self.device}")
            session = onnx_module(self.models_dir, loaded, self.threads)
            return Choice(ONNX, f"set: {source} = onnx"), session
        if self.device != "cpu":
            return Choice(TORCH, f"auto: the device is {self.device} (onnx runs on CPU)"), None
        try:
            path, report = verified_export(self.models_dir, loaded)
        except (WeightsMissing, WeightsInvalid) as exc:
            return Choice(TORCH, f"auto: no usable onnx export ({exc.detail})"), None
        choice = speed_verdict(report.get("speed"), threads=self.threads, batch=self.batch, cpu=cpu_model())
        if choice.name == TORCH:
            return choice, None
        try:
            return choice, OnnxModule(path, input_names(loaded.spec), self.threads)
        except Exception as exc:  # a corrupt file, a runtime that cannot load it: same weights in torch
            return Choice(TORCH, f"auto: ONNX Runtime could not load {path.name} ({str(exc)[:200]})"), None
