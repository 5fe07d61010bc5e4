"""A CUDA out-of-memory in a forward pass splits the batch and retries (same rows), on CPU:
a real module that raises ``torch.cuda.OutOfMemoryError`` above a batch size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from app.analysis.batch_events import add_batch_listener, remove_batch_listener
from app.analysis.classifier import guard_for, predict
from app.analysis.oom_retry import GpuOutOfMemory, OomGuard
from app.errors import AnalysisError

CLASSES = 7


class TinyVideoNet(nn.Module):
    """Conv3d -> pool -> linear logits; ``limit`` makes batches above it 'run out of memory'."""

    def __init__(self, limit: int | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv3d(3, 4, kernel_size=3, padding=1)
        self.head = nn.Linear(4, CLASSES)
        self.limit = limit
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.limit is not None and x.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (batch {x.shape[0]} > {self.limit})")
        self.calls.append(int(x.shape[0]))
        return self.head(self.conv(x).mean(dim=(2, 3, 4)))


def views(n: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return [torch.randn(3, 4, 8, 8, generator=gen) for _ in range(n)]


def test_split_rows_equal_the_unsplit_pass() -> None:
    clips = views(13)
    whole = TinyVideoNet()
    expected = predict(whole, clips, output="logits", num_classes=CLASSES, device=torch.device("cpu"))
    assert whole.calls == [13]

    small = TinyVideoNet(limit=3)
    small.load_state_dict(whole.state_dict())
    sizes: list[int] = []
    add_batch_listener(sizes.append)
    try:
        got = predict(small, clips, output="logits", num_classes=CLASSES, device=torch.device("cpu"))
    finally:
        remove_batch_listener(sizes.append)
    assert got.shape == (13, CLASSES)
    assert np.allclose(got, expected, atol=1e-6)
    assert max(small.calls) <= 3 and sum(small.calls) == 13
    assert sizes == small.calls
    guard = guard_for(small)
    assert guard.cap is not None and guard.cap <= 3 and guard.ooms >= 2

    # the learned cap: the next batch is cut up front, no new OOM
    ooms, small.calls = guard.ooms, []
    again = predict(small, clips[:8], output="logits", num_classes=CLASSES, device=torch.device("cpu"))
    assert guard.ooms == ooms
    assert np.allclose(again, expected[:8], atol=1e-6)
    assert small.calls == [guard.cap] * (8 // guard.cap) + ([8 % guard.cap] if 8 % guard.cap else [])


def test_one_view_that_does_not_fit_fails_the_batch_with_a_code() -> None:
    model = TinyVideoNet(limit=0)
    with pytest.raises(GpuOutOfMemory) as caught:
        predict(model, views(4), output="logits", num_classes=CLASSES, device=torch.device("cpu"))
    assert isinstance(caught.value, AnalysisError)
    assert caught.value.code == "gpu_out_of_memory" and caught.value.retryable
    # the module itself is still usable: a later, fitting call runs
    model.limit = None
    assert predict(
        model, views(2), output="logits", num_classes=CLASSES, device=torch.device("cpu")
    ).shape == (
        2,
        CLASSES,
    )


def test_guard_leaves_other_errors_alone() -> None:
    def broken(items: object) -> torch.Tensor:
        raise ValueError("not an OOM")

    guard = OomGuard()
    with pytest.raises(ValueError, match="not an OOM"):
        guard.run(broken, [1, 2, 3])
    assert guard.ooms == 0 and guard.cap is None
