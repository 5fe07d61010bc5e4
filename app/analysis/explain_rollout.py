"""MViT explained: HiResCAM on the patch tokens; attention rollout kept for comparison.

**The method** (``patch_token_cam``, ``METHOD``): HiResCAM (``explain.py``) on the tokens the
patch embedding hands the transformer, ``relu(sum_c dS/dx_c * x_c)`` per token (before the
position embedding is added, so the map is about the clip, not the learnt position code),
reshaped to the patch grid (t, h, w). The gradient comes down through every block's attention
and the head, so the map is class-specific and depends on all the weights above the tokens.
Measured on the demo MViT (``tests/known_answer/test_explain_mvit.py``): peak on the acting
object in 23 of 24 segments, and cascading weight randomisation (Adebayo et al., 2018; head,
then blocks from the last down) leaves mean Spearman correlations of -0.00 to 0.23 with the
trained map at every step (< 0.5 over 8 randomisation seeds; the head step's largest 0.46).

Why not attention: every attention-weighted map tried stayed close to the trained one, for
some randomisation seeds, after the head or the top block was re-initialised, because the
lower blocks' trained attention still marks the object (head step, mean over 8 seeds and the
largest): gradient-weighted rollout (Chefer et al., 2021) with row-normalised mixing, this
module's ``rollout``, 0.75 and 0.86; unnormalised and coverage-divided, 0.50 and 0.62; over
only the blocks from the last query pooling on, 0.57 and 0.75; the query-pooling block's
gradient-weighted class-token row, 0.38 and 0.64. The last block's class-token attention
missed the object in 16 of 24 segments, and that block's output tokens get no gradient (the
head reads only the class token); HiResCAM on deeper blocks' tokens missed in 6 (block 1)
and 15 (block 2) of 24. Figures in docs/MODELS.md.

**Attention rollout** (``rollout``, ``ROLLOUT``; Abnar & Zuidema, 2020): each block's mixing
``0.5 * A @ P_kv + 0.5 * P_skip`` (attention averaged over heads, rows summing to 1, keys pooled
by ``P_kv``, the residual pooled the query's way by ``P_skip``), multiplied from the last block
down; the class token's row over the patch grid is the map. Each pooling is read as a
matrix of window averages (kernel, stride, padding from the pooling layer; the class token
passes through) and applied axis by axis to the carried-back row vector, so no (tokens x
tokens) matrix is built. The row is divided by the same row for uniform attention, which
removes the lattice overlapping windows leave. ``weighted=True`` (the default) uses
``relu(dS/dA * A)`` per head (Chefer et al.), so the map is class-specific.

The attention matrix is a local of ``MultiScaleAttention.forward`` (pytorchvideo 0.1.5), so a
forward hook recomputes the block's attention from its own input with the module's own
helpers and returns that output in place of the original (same values), which puts the
attention matrix in the graph the class score's gradient flows through. Hooks act only for
the thread that set them: the inference thread may run the same module meanwhile.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from app.analysis.explain import Cam, ExplainUnsupported, head_graph, normalised

METHOD = "hirescam-patch-tokens"
ROLLOUT = "attention-rollout"


@dataclass(frozen=True)
class Attention:
    """One block's attention (heads, queries, keys) and its token grids (t, h, w)."""

    attn: torch.Tensor
    thw_in: tuple[int, int, int]
    thw_q: tuple[int, int, int]
    thw_kv: tuple[int, int, int]


def _recompute(attention: nn.Module, inputs: tuple[Any, ...], seen: list[Attention]) -> tuple[Any, Any]:
    """``MultiScaleAttention.forward`` step for step (dropout is off in eval), keeping ``attn``."""
    m: Any = attention
    x, thw = inputs
    batch, tokens, channels = x.shape
    if m.pool_first:
        heads = x.reshape(batch, tokens, m.num_heads, channels // m.num_heads).permute(0, 2, 1, 3)
        q, q_shape, k, k_shape, v, v_shape = m._qkv_pool(heads, heads, heads, thw)
        q_n, k_n, v_n = m._get_qkv_length(q_shape, k_shape, v_shape)
        q, k, v = m._reshape_qkv_to_seq(q, k, v, q_n, v_n, k_n, batch, channels)
        q, k, v = m._qkv_proj(q, q_n, k, k_n, v, v_n, batch, channels)
    else:
        q, k, v = m._qkv_proj(x, tokens, x, tokens, x, tokens, batch, channels)
        q, q_shape, k, k_shape, v, v_shape = m._qkv_pool(q, k, v, thw)
    attn = ((q @ k.transpose(-2, -1)) * m.scale).softmax(dim=-1)
    out = m.proj((attn @ v).transpose(1, 2).reshape(batch, q.shape[2], channels))
    seen.append(Attention(attn, _thw(thw), _thw(q_shape), _thw(k_shape)))
    return out, q_shape


def _thw(shape: Any) -> tuple[int, int, int]:
    t, h, w = (int(n) for n in shape)
    return t, h, w


def _axis(size: int, out: int, kernel: int, stride: int, padding: int) -> torch.Tensor:
    """(out, size): output ``i`` averages the inputs under its window ``[i*s - p, i*s - p + k)``."""
    matrix = torch.zeros(out, size)
    for i in range(out):
        low, high = max(0, i * stride - padding), min(size, i * stride - padding + kernel)
        if high > low:
            matrix[i, low:high] = 1.0 / (high - low)
    return matrix


def _triple(value: Any) -> tuple[int, int, int]:
    return _thw(value if isinstance(value, tuple | list) else (value, value, value))


Axes = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def pooling_axes(pool: nn.Module | None, thw_in: tuple[int, int, int], thw_out: tuple[int, int, int]) -> Axes:
    """``pool`` over a (t, h, w) token grid as one (out, in) averaging matrix per axis; the
    pooling of the flattened grid is their Kronecker product (None: no pooling, the identity)."""
    if pool is None:
        if thw_in != thw_out:
            raise ExplainUnsupported(f"token grid changed from {thw_in} to {thw_out} without a pooling layer")
        return torch.eye(thw_in[0]), torch.eye(thw_in[1]), torch.eye(thw_in[2])
    kernel, stride, padding = (_triple(getattr(pool, name)) for name in ("kernel_size", "stride", "padding"))
    t, h, w = (_axis(*args) for args in zip(thw_in, thw_out, kernel, stride, padding, strict=True))
    return t, h, w


def pool_back(row: torch.Tensor, axes: Axes, cls: bool) -> torch.Tensor:
    """``row @ P``: a weighting of the pooled tokens (class token first, when ``cls``) carried
    back to the tokens they were pooled from, without building P (tokens x tokens)."""
    t, h, w = axes
    head, grid = (row[:1], row[1:]) if cls else (row[:0], row)
    back = torch.einsum("abc,ai,bj,ck->ijk", grid.reshape(t.shape[0], h.shape[0], w.shape[0]), t, h, w)
    return torch.cat([head, back.flatten()])


def _rows_to_one(matrix: torch.Tensor) -> torch.Tensor:
    sums = matrix.sum(dim=-1, keepdim=True)
    return torch.where(sums > 0, matrix / sums.clamp(min=1e-30), torch.zeros_like(matrix))


def _back_through(block: nn.Module, seen: Attention, heads: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
    """``row @ M`` for the block's mixing ``M = 0.5 * A @ P_kv + 0.5 * P_skip`` (output tokens x
    input tokens, rows summing to 1: a query row of ``A`` with no mass keeps only the residual)."""
    attention: Any = block.attn
    cls = bool(attention.has_cls_embed)
    a = _rows_to_one(heads)
    residual = torch.where(a.sum(dim=-1) > 0, 0.5, 1.0)
    p_kv = pooling_axes(attention.pool_k, seen.thw_in, seen.thw_kv)
    p_skip = pooling_axes(getattr(block, "pool_skip", None), seen.thw_in, seen.thw_q)
    return 0.5 * pool_back(row @ a, p_kv, cls) + pool_back(row * residual, p_skip, cls)


def _blocks(module: nn.Module) -> list[nn.Module]:
    blocks = getattr(module, "blocks", None)
    if not isinstance(blocks, nn.ModuleList) or not all(
        hasattr(b, "attn") and hasattr(b.attn, "_qkv_pool") for b in blocks
    ):
        raise ExplainUnsupported(
            f"{type(module).__name__} is not a pytorchvideo multiscale vision transformer"
        )
    return list(blocks)


@contextmanager
def attention_recorded(module: nn.Module) -> Iterator[list[Attention]]:
    """While open, every forward of ``module`` (an MViT) appends each block's attention, in the
    graph, to the list it yields; the blocks' outputs are the same values as without."""
    seen: list[Attention] = []
    me = threading.get_ident()

    def hook(attention: nn.Module, args: tuple[Any, ...], _: Any) -> tuple[Any, Any] | None:
        return _recompute(attention, args, seen) if threading.get_ident() == me else None

    handles = [block.attn.register_forward_hook(hook) for block in _blocks(module)]  # type: ignore[union-attr]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def patch_token_cam(module: nn.Module, view: torch.Tensor, class_ids: list[int]) -> list[Cam]:
    """HiResCAM of ``view`` (3, T, S, S) on the patch-embedding tokens, for each class id, on
    the patch grid; only the tokens and what follows them get a graph, no parameter a
    ``.grad`` (``explain.head_graph``)."""
    _blocks(module)
    embed = getattr(module, "patch_embed", None)
    shape = getattr(getattr(module, "cls_positional_encoding", None), "patch_embed_shape", None)
    if embed is None or shape is None:
        raise ExplainUnsupported("the MViT has no patch embedding grid to explain on")
    thw = _thw(shape)
    device = next(module.parameters()).device
    x = view.detach().to(device).clone().unsqueeze(0)
    with torch.inference_mode(False):
        scores, tokens = head_graph(module, [embed], x, _only)
        if tokens.dim() != 3 or tokens.shape[1] != thw[0] * thw[1] * thw[2]:
            raise ExplainUnsupported(f"patch tokens {tuple(tokens.shape)} do not fill the grid {thw}")
        cams = []
        for n, class_id in enumerate(class_ids):
            (grad,) = torch.autograd.grad(scores[0, class_id], tokens, retain_graph=n + 1 < len(class_ids))
            cam = torch.relu((grad[0] * tokens[0].detach()).sum(dim=-1)).reshape(thw)
            cams.append(normalised(class_id, cam.cpu().float(), view.shape[1]))
    return cams


def _only(outputs: list[Any]) -> int:
    """``head_graph``'s pick: the one hooked module, the patch embedding."""
    return 0


def rollout(
    module: nn.Module, view: torch.Tensor, class_ids: list[int], *, weighted: bool = True
) -> list[Cam]:
    """Attention rollout of ``view`` (3, T, S, S) for each class id, on the patch-embedding grid;
    the model and its parameters are left as they were (see ``explain.grad_cam``)."""
    blocks = _blocks(module)
    with attention_recorded(module) as seen, torch.inference_mode(False), torch.enable_grad():
        device = next(module.parameters()).device
        scores = module(view.detach().to(device).clone().unsqueeze(0))
        attns = [s.attn for s in seen]
        cams = []
        for n, class_id in enumerate(class_ids):
            grads: tuple[torch.Tensor | None, ...] = (None,) * len(attns)
            if weighted:
                grads = torch.autograd.grad(scores[0, class_id], attns, retain_graph=n + 1 < len(class_ids))
            cams.append(normalised(class_id, _rolled(blocks, seen, grads), view.shape[1]))
    return cams


def _rolled(
    blocks: list[nn.Module], seen: list[Attention], grads: tuple[torch.Tensor | None, ...]
) -> torch.Tensor:
    """The class token's (or, without one, the mean token's) row of the rollout over the patch
    grid (t, h, w), divided by the same row for uniform attention (``coverage``)."""
    if len(seen) != len(blocks):
        raise ExplainUnsupported("not every attention block ran once")
    mixed = []
    for item, grad in zip(seen, grads, strict=True):
        attn = item.attn[0].detach().cpu().float()
        mixed.append(
            (attn if grad is None else torch.relu(grad[0].detach().cpu().float() * attn)).mean(dim=0)
        )
    content = _carried(blocks, seen, mixed)
    coverage = _carried(blocks, seen, [torch.ones_like(m) for m in mixed])
    return torch.where(coverage > 0, content / coverage.clamp(min=1e-30), torch.zeros_like(content))


def _carried(blocks: list[nn.Module], seen: list[Attention], mixed: list[torch.Tensor]) -> torch.Tensor:
    """The rollout's class-token row carried back from the last block to the first, as a row vector."""
    first: Any = blocks[0].attn
    cls = bool(first.has_cls_embed)
    tokens = seen[-1].attn.shape[-2]
    row = torch.zeros(tokens) if cls else torch.full((tokens,), 1.0 / tokens)
    row[0] = 1.0 if cls else row[0]
    for block, item, heads in reversed(list(zip(blocks, seen, mixed, strict=True))):
        row = _back_through(block, item, heads, row)
    return (row[1:] if cls else row).reshape(seen[0].thw_in)
