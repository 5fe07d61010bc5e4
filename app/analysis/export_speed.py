"""Is an export faster than PyTorch on this worker? Time both as the worker runs them.

PyTorch with the worker's torch threads and batch size, against the worker's own module for
the export (``export_modules.OnnxModule``, ``export_modules.OpenVinoModule``), all interleaved after a
warm-up, rotating which goes first, medians taken, so background load hits each alike. The
``auto`` backend (``backend_choice``) reads the figures from the export report.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from app.analysis.artifacts import cpu_model
from app.analysis.export_verification import random_clips
from app.analysis.spec import ModelSpec

TORCH = "torch"


@dataclass
class Speed:
    """Median inference time per clip of PyTorch and of one backend, measured together."""

    backend: str
    torch_ms_per_clip: float
    backend_ms_per_clip: float
    batch: int
    threads: int
    rounds: int
    host: str
    cpu: str


def time_interleaved(runs: Mapping[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds of each call: one warm-up call each, then ``rounds`` rounds, each
    starting one further along the list."""
    names = list(runs)
    for name in names:
        runs[name]()
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            start = time.perf_counter()
            runs[name]()
            seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in seconds.items()}


def measure_speed(
    reference: nn.Module,
    modules: Mapping[str, nn.Module],
    spec: ModelSpec,
    *,
    threads: int,
    batch: int,
    rounds: int,
) -> dict[str, float]:
    """Milliseconds per clip of PyTorch (the loaded module, Swish and all, under
    ``TORCH``) and of each of ``modules`` on one random batch, at ``threads`` torch threads
    (the caller's count is restored)."""
    if rounds < 1 or batch < 1 or threads < 1:
        raise ValueError("rounds, batch and threads must be at least 1")
    clips = random_clips(spec, batch, seed=3)
    paths = [torch.cat([clip[i] for clip in clips]) for i in range(len(clips[0]))]
    arg: torch.Tensor | list[torch.Tensor] = paths if spec.alpha else paths[0]

    def call(module: nn.Module) -> Callable[[], object]:
        def run() -> object:
            with torch.inference_mode():
                return module(arg)

        return run

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        medians = time_interleaved(
            {TORCH: call(reference)} | {k: call(m) for k, m in modules.items()}, rounds
        )
    finally:
        torch.set_num_threads(previous)
    return {name: round(1000 * value / batch, 3) for name, value in medians.items()}


def speed_of(backend: str, ms: Mapping[str, float], *, threads: int, batch: int, rounds: int) -> Speed:
    """The report's figures for ``backend`` out of ``measure_speed``'s."""
    return Speed(
        backend=backend,
        torch_ms_per_clip=ms[TORCH],
        backend_ms_per_clip=ms[backend],
        batch=batch,
        threads=threads,
        rounds=rounds,
        host=platform.node(),
        cpu=cpu_model(),
    )
