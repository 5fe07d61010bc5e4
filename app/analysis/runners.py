"""What runs a batch: numpy arrays in (one per pathway), a ``(batch, outputs)`` float32 array out.

The pipeline's clips, scores and sums are numpy arrays, so a job whose backend is a verified
export (OpenVINO, ONNX Runtime) never needs torch: a CLI run skips its import, about 1.5-2.2
CPU seconds on two vCPUs, on the job's critical path. ``TorchRunner`` is the one place a
torch module meets those arrays: it wraps the batch without a copy on the CPU, pins and
copies it to a GPU, and runs under ``inference_mode`` (and autocast on CUDA).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from weakref import WeakKeyDictionary

import numpy as np

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from torch import nn

    from app.analysis.openvino_runtime import CompiledIR


class Runner(Protocol):
    """One forward pass: a batch per input (SlowFast: slow, fast) -> ``(batch, outputs)``."""

    def __call__(self, inputs: Sequence[np.ndarray]) -> np.ndarray: ...


class OpenVinoRunner:
    """A compiled OpenVINO IR."""

    def __init__(self, compiled: CompiledIR) -> None:
        self.compiled = compiled

    def __call__(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        return self.compiled.infer(inputs)


class OnnxRunner:
    """An ONNX Runtime session on the CPU, ``threads`` intra-op threads."""

    def __init__(self, path: Path, input_names: list[str], threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = input_names

    def __call__(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        feeds = {
            name: np.ascontiguousarray(a, dtype=np.float32)
            for name, a in zip(self.input_names, inputs, strict=True)
        }
        out: np.ndarray = self.session.run(None, feeds)[0]
        return out


class TorchRunner:
    """A torch module on ``device``; one input is passed as a tensor, several as a list."""

    def __init__(self, module: nn.Module, device: str) -> None:
        import torch

        self.module, self.device = module, torch.device(device)

    def __call__(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        import torch

        tensors = [self._move(torch.from_numpy(np.ascontiguousarray(a))) for a in inputs]
        with torch.inference_mode(), self._autocast():
            out: torch.Tensor = self.module(tensors if len(tensors) > 1 else tensors[0])
        return out.float().cpu().reshape(out.shape[0], -1).numpy()

    def _move(self, tensor: Any) -> Any:
        if self.device.type != "cuda":
            return tensor
        return tensor.pin_memory().to(self.device, non_blocking=True)

    def _autocast(self) -> AbstractContextManager[object]:
        from contextlib import nullcontext

        import torch

        if self.device.type != "cuda":
            return nullcontext()
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast(device_type="cuda", dtype=dtype)


_torch_runners: WeakKeyDictionary[Any, TorchRunner] = WeakKeyDictionary()


def as_runner(model: Runner | nn.Module, device: str = "cpu") -> Runner:
    """``model`` itself when it runs arrays, else its ``TorchRunner`` (one per module and device,
    so views of jobs sharing a model share batches, and its out-of-memory guard lives on)."""
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(model, torch.nn.Module):
        return model
    runner = _torch_runners.get(model)
    if runner is None or str(runner.device) != str(torch.device(device)):
        runner = _torch_runners[model] = TorchRunner(model, device)
    return runner
