"""GPU memory and utilisation, read when a worker's metrics are scraped.

Memory comes from PyTorch's caching allocator (``memory_allocated``, ``memory_reserved``,
the peak since start) for each device this process has initialised; utilisation and the
card's used/total memory come from NVML through ``pynvml`` when that package is installed.
Nothing here imports torch: a process that never loaded it (the API) or never touched CUDA
yields no GPU series rather than paying for a CUDA context at scrape time.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)


def _torch_cuda() -> Any | None:
    """``torch.cuda`` when torch is already loaded and CUDA initialised here, else None."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return torch.cuda


def _nvml() -> Any | None:
    try:
        nvml = importlib.import_module("pynvml")
        nvml.nvmlInit()
    except Exception:  # not installed, or no driver
        return None
    return nvml


class GpuCollector(Collector):
    """``vas_gpu_memory_*_bytes`` per device (allocator figures) and, with NVML,
    ``vas_gpu_utilization_percent`` and the card's memory in use."""

    def collect(self) -> Iterator[Metric]:
        cuda = _torch_cuda()
        if cuda is not None:
            families = {
                "allocated": ("Bytes held by tensors (PyTorch allocator)", cuda.memory_allocated),
                "reserved": ("Bytes reserved by PyTorch's caching allocator", cuda.memory_reserved),
                "max_allocated": ("Peak bytes held by tensors since start", cuda.max_memory_allocated),
            }
            for name, (help_text, read) in families.items():
                family = GaugeMetricFamily(f"vas_gpu_memory_{name}_bytes", help_text, labels=["device"])
                for index in range(cuda.device_count()):
                    family.add_metric([str(index)], float(read(index)))
                yield family
        nvml = _nvml()
        if nvml is None:
            return
        use = GaugeMetricFamily("vas_gpu_utilization_percent", "GPU busy time (NVML)", labels=["device"])
        used = GaugeMetricFamily("vas_gpu_memory_used_bytes", "Card memory in use (NVML)", labels=["device"])
        try:
            for index in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                use.add_metric([str(index)], float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu))
                used.add_metric([str(index)], float(nvml.nvmlDeviceGetMemoryInfo(handle).used))
        except Exception as exc:
            log.warning("metrics: NVML read failed: %s", exc)
            return
        yield use
        yield used
