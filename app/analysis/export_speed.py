"""Is the ONNX export faster than PyTorch on this worker? Time both as the worker runs them.

PyTorch with the worker's torch threads and batch size, against the worker's own ONNX
Runtime session (``backends.OnnxModule``), A and B interleaved after a warm-up and medians
taken, so background load hits both alike. The ``auto`` backend reads these figures (from
the export report) to decide which one the worker runs.
"""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from app.analysis.artifacts import cpu_model, input_names
from app.analysis.backends import OnnxModule
from app.analysis.export_verification import random_clips
from app.analysis.spec import ModelSpec


@dataclass
class Speed:
    """Median inference time per clip of each backend, and what it was measured with."""

    torch_ms_per_clip: float
    onnx_ms_per_clip: float
    batch: int
    threads: int
    rounds: int
    host: str
    cpu: str


def measure_speed(
    reference: nn.Module, artifact: Path, spec: ModelSpec, *, threads: int, batch: int, rounds: int
) -> Speed:
    """PyTorch (the loaded module, Swish and all) against the worker's ONNX Runtime
    session on one random batch: a warm-up call each, then ``rounds`` rounds alternating
    which goes first; medians per clip."""
    if rounds < 1 or batch < 1 or threads < 1:
        raise ValueError("rounds, batch and threads must be at least 1")
    session = OnnxModule(artifact, input_names(spec), threads)
    clips = random_clips(spec, batch, seed=3)
    paths = [torch.cat([clip[i] for clip in clips]) for i in range(len(clips[0]))]
    arg: torch.Tensor | list[torch.Tensor] = paths if spec.alpha else paths[0]

    def run_torch() -> None:
        with torch.inference_mode():
            reference(arg)

    def run_onnx() -> None:
        session(arg)

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        run_torch()
        run_onnx()
        seconds: dict[str, list[float]] = {"torch": [], "onnx": []}
        pair = [("torch", run_torch), ("onnx", run_onnx)]
        for i in range(rounds):
            for name, fn in pair if i % 2 == 0 else pair[::-1]:
                start = time.perf_counter()
                fn()
                seconds[name].append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    return Speed(
        torch_ms_per_clip=round(1000 * statistics.median(seconds["torch"]) / batch, 3),
        onnx_ms_per_clip=round(1000 * statistics.median(seconds["onnx"]) / batch, 3),
        batch=batch,
        threads=threads,
        rounds=rounds,
        host=platform.node(),
        cpu=cpu_model(),
    )
