"""A worker's batch sizes and decoded frames reach ``/metrics``; GPU series only with CUDA."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from app.analysis.batch_events import remove_batch_listener
from app.analysis.classifier import predict
from app.metrics import Metrics, serve_worker_metrics


class Pool(nn.Module):
    """Logits from the mean of each channel (a real forward pass, tiny)."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(3, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean(dim=(2, 3, 4)))


@pytest.fixture
def worker_metrics() -> Iterator[tuple[Metrics, str]]:
    metrics = Metrics()
    metrics.for_worker()
    server = serve_worker_metrics(metrics, "127.0.0.1", 0)
    yield metrics, f"http://127.0.0.1:{server.server_port}/metrics"
    server.shutdown()
    remove_batch_listener(metrics.batch_size.observe)


def scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_batch_sizes_and_decoded_frames_are_scraped(worker_metrics: tuple[Metrics, str]) -> None:
    metrics, url = worker_metrics
    model = Pool()
    for n in (1, 3, 16):
        views = [torch.rand(3, 2, 4, 4) for _ in range(n)]
        predict(model, views, output="logits", num_classes=5, device=torch.device("cpu"))
    metrics.record_results("x3d_s", 4, 2.0, 1.0, 0.5, decoded_frames=240)
    got = scrape(url)
    assert got["vas_batch_size_count"] == 3
    assert got["vas_batch_size_sum"] == 20
    assert got['vas_batch_size_bucket{le="2.0"}'] == 1
    assert got['vas_batch_size_bucket{le="4.0"}'] == 2
    assert got['vas_batch_size_bucket{le="16.0"}'] == 3
    assert got['vas_decode_frames_total{model="x3d_s"}'] == 240
    has_gpu_series = any(k.startswith("vas_gpu_memory_allocated_bytes") for k in got)
    assert has_gpu_series == (torch.cuda.is_available() and torch.cuda.is_initialized())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_memory_is_scraped_once_cuda_is_used(worker_metrics: tuple[Metrics, str]) -> None:
    _, url = worker_metrics
    held = torch.empty(64 << 20, dtype=torch.uint8, device="cuda")
    got = scrape(url)
    assert got['vas_gpu_memory_allocated_bytes{device="0"}'] >= held.numel()
    assert got['vas_gpu_memory_max_allocated_bytes{device="0"}'] >= held.numel()
