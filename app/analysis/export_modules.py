"""Exports behind the ``nn.Module`` call convention, for the code that compares them with the
PyTorch module on torch tensors (``export_verification``, ``export_speed``, ``bench/``): a
batch tensor (or SlowFast's ``[slow, fast]``) in, a ``(batch, classes)`` tensor out. The
worker runs the same runners on arrays (``runners``), without torch.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from app.analysis.openvino_runtime import CompiledIR
from app.analysis.runners import OnnxRunner, OpenVinoRunner


def _arrays(x: torch.Tensor | list[torch.Tensor]) -> list[torch.Tensor]:
    paths = x if isinstance(x, list) else [x]
    return [p.detach().to("cpu", torch.float32).contiguous() for p in paths]


class OnnxModule(nn.Module):
    """An ONNX Runtime session (``runners.OnnxRunner``) as a module."""

    def __init__(self, path: Path, input_names: list[str], threads: int = 1) -> None:
        super().__init__()
        self.runner = OnnxRunner(path, input_names, threads)

    def forward(self, x: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        return torch.from_numpy(self.runner([p.numpy() for p in _arrays(x)]))


class OpenVinoModule(nn.Module):
    """A compiled OpenVINO IR (``runners.OpenVinoRunner``) as a module."""

    def __init__(self, compiled: CompiledIR) -> None:
        super().__init__()
        self.compiled = compiled
        self.runner = OpenVinoRunner(compiled)

    def forward(self, x: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        return torch.from_numpy(self.runner([p.numpy() for p in _arrays(x)]))
