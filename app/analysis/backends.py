"""Inference backends. ``torch`` runs the loaded module; ``onnx`` runs the model's
verified ONNX export (``models export NAME --format onnx``) with ONNX Runtime on CPU.

A backend is a module: a batch tensor (or SlowFast's ``[slow, fast]``) in, a
``(batch, classes)`` tensor out, so the classifier needs no change. The ONNX file is
only used when its verification report passed for the very weights file loaded;
otherwise the job fails with a message saying what to run (never a silent fallback).
Which backend is faster on a given CPU is the benchmark's call (docs/PERFORMANCE.md),
set per model with ``VAS_BACKENDS='{"x3d_xs": "onnx"}'``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from app.analysis.loader import LoadedModel
from app.errors import WeightsInvalid, WeightsMissing

TORCH, ONNX = "torch", "onnx"


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


def onnx_module(models_dir: Path, loaded: LoadedModel, threads: int = 1) -> OnnxModule:
    from app.analysis.export import ExportFormat, artifact_path, input_names, report_path

    spec = loaded.spec
    path = artifact_path(models_dir, spec, ExportFormat.ONNX)
    how = f"run `python -m app models export {spec.name} --format onnx`"
    if not path.is_file():
        raise WeightsMissing(
            f"{spec.name} is set to the onnx backend but {path.name} is not in {models_dir}: {how}"
        )
    try:
        report: dict[str, Any] = json.loads(report_path(path).read_text())
    except (OSError, ValueError) as exc:
        raise WeightsInvalid(f"{path.name} has no readable verification report: {how}") from exc
    if not report.get("passed") or report.get("weights_sha256") != loaded.sha256:
        raise WeightsInvalid(f"{path.name} was not verified against the current {spec.weights}: {how}")
    return OnnxModule(path, input_names(spec), threads)


class Backends:
    """Picks each model's backend from settings; ONNX sessions are kept per file version."""

    def __init__(
        self, models_dir: Path, choices: Mapping[str, str], *, threads: int = 1, device: str = "cpu"
    ) -> None:
        self.models_dir, self.choices, self.threads, self.device = models_dir, dict(choices), threads, device
        self._sessions: dict[tuple[str, str], OnnxModule] = {}
        self._lock = threading.Lock()

    def name_for(self, model: str) -> str:
        return self.choices.get(model, TORCH)

    def module(self, loaded: LoadedModel) -> nn.Module:
        if self.name_for(loaded.spec.name) != ONNX:
            return loaded.module
        if self.device != "cpu":
            raise WeightsInvalid(
                f"the onnx backend runs on CPU; {loaded.spec.name} is set up for {self.device}"
            )
        key = (loaded.spec.name, loaded.sha256)
        with self._lock:
            if key not in self._sessions:
                self._sessions[key] = onnx_module(self.models_dir, loaded, self.threads)
            return self._sessions[key]
