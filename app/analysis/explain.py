"""Class activation maps for the 3D CNNs: which frames and which regions of a clip drove a label.

Own hook-based implementation (about the size of a library adapter): the maintained
libraries (``grad-cam``, ``torchcam``, captum) are not dependencies of the service, and
their 2-D image assumptions (target-layer reshapes, upsampling to the input) need adapting
for (N, C, T, H, W) activations anyway. The method is HiResCAM (Draelos & Carin, 2020),
Grad-CAM with the gradient kept per position instead of averaged over the grid:
``relu(sum_c dS/dA_c * A_c)`` over (t, h, w). Measured on the demo model
(``tests/known_answer/test_explain.py``): plain Grad-CAM's peak missed the moving object in
a quarter of the segments; LayerCAM (positive gradients only) found it but barely depended
on the weights above the layer (rank correlation 0.6-0.75 with the trained map after
re-initialising them, Adebayo et al.'s check); HiResCAM does both (all segments, < 0.1).

The layer: pytorchvideo's ``Net`` (X3D, Slow, C2D, I3D, R(2+1)D, CSN) is a list of blocks
ending in the head; the map comes from the deepest block before the head whose grid is at
least ``MIN_GRID`` cells on its short side (the last stage for 224-pixel crops, 7x7; an
earlier, finer stage for small crops such as the demo model's 64, whose last stage is 2x2).
SlowFast's two pathways are fused in ``explain_slowfast.py``, MViT's attention is rolled out
in ``explain_rollout.py``; ``explain_methods.py`` picks one by the model's family.

``register`` puts a map computed on the model's crop back onto the displayed frame (see its
docstring); frames reach the model already turned upright (``decode.frame_to_rgb``), so the
displayed frame is the rotated one and no rotation is left to undo.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

METHOD = "hirescam"
MIN_GRID = 7
"""Fewest cells on the short side of the grid the map is taken from (see the module docstring)."""


class ExplainUnsupported(Exception):
    """The model's architecture has no explanation method here yet."""


@dataclass(frozen=True)
class Cam:
    """One label's map on the model's crop: ``cam`` (t, h, w) in 0..1 and one weight per
    input frame (0..1, the map's mass over time, each frame taking its feature step's)."""

    class_id: int
    cam: torch.Tensor
    frame_weights: tuple[float, ...]


def feature_blocks(module: nn.Module) -> list[nn.Module]:
    """A pytorchvideo ``Net``'s blocks before its head (``ExplainUnsupported`` for anything else)."""
    blocks = getattr(module, "blocks", None)
    if not isinstance(blocks, nn.ModuleList) or len(blocks) < 2:
        raise ExplainUnsupported(f"{type(module).__name__} is not a pytorchvideo Net of blocks")
    return list(blocks[:-1])


def _pick(outputs: list[Any]) -> int:
    """Index of the block whose output the map is taken from."""
    if any(not isinstance(out, torch.Tensor) or out.dim() != 5 for out in outputs):
        raise ExplainUnsupported("only single-pathway 3D CNNs (5-D block outputs) are explained")
    for i in range(len(outputs) - 1, -1, -1):
        if min(outputs[i].shape[-2:]) >= MIN_GRID:
            return i
    return len(outputs) - 1


def grad_cam(module: nn.Module, view: torch.Tensor, class_ids: list[int]) -> list[Cam]:
    """HiResCAM of ``view`` (3, T, S, S), as the pipeline prepares it, for each class id.

    The module is used as is (eval mode, shared with inference, maybe by another thread at
    the same time): only the head above the picked block gets a graph (``head_graph``) and
    only the layer's gradient is taken from it, so no parameter gets a ``.grad`` and the
    weights are untouched."""
    blocks = feature_blocks(module)
    device = next(module.parameters()).device
    x = view.detach().to(device).clone().unsqueeze(0)
    with torch.inference_mode(False):
        scores, activation = head_graph(module, blocks, x, _pick)
        cams = []
        for n, class_id in enumerate(class_ids):
            # autograd.grad, not backward: no gradient lands on the shared parameters
            (grad,) = torch.autograd.grad(
                scores[0, class_id], activation, retain_graph=n + 1 < len(class_ids)
            )
            cam = torch.relu((grad[0] * activation[0].detach()).sum(dim=0))
            cams.append(normalised(class_id, cam.cpu(), view.shape[1]))
    return cams


_PICKS: weakref.WeakKeyDictionary[nn.Module, dict[tuple[Any, ...], tuple[int, bool]]] = (
    weakref.WeakKeyDictionary()
)
"""Per module and (pick function, input shapes, device): the picked block's index and whether
it gives one output per pathway (block shapes follow from the input's)."""
_PICKS_LOCK = threading.Lock()


def head_graph(
    module: nn.Module,
    blocks: list[nn.Module],
    x: Any,
    pick: Callable[[list[Any]], int],
    keep: Callable[[Any], Any] = lambda out: out,
) -> tuple[torch.Tensor, Any]:
    """The class scores of ``x`` with an autograd graph from the picked block on, and that
    block's output (a tensor, or a list of them: one per pathway).

    The trunk below the block runs without a graph (most of the forward's cost and memory: its
    early stages have the finest grids); hooks on the block switch grad on for the rest of the
    forward. A single output becomes a fresh leaf (its gradient is the one a whole-trunk graph
    gives there). Pathways are taken from a graph through the block itself: its fusion feeds one
    pathway's output into another's, and a whole-trunk graph counts that path in the gradient.
    The block is picked from all blocks' outputs (``pick``; ``keep`` copies one for it) by a
    first forward without a graph, once per module and input shape. Hooks act only for the
    calling thread: the inference thread may run the same module meanwhile (PyTorch backend).
    Convolutions take faster paths meanwhile (``_FastConvolutions``)."""
    me = threading.get_ident()
    x = [_channels_last(t) for t in x] if isinstance(x, list) else _channels_last(x)
    shapes = tuple(tuple(t.shape) for t in (x if isinstance(x, list) else [x]))
    key = (pick, shapes, next(module.parameters()).device)
    with _PICKS_LOCK:
        picked = _PICKS.get(module, {}).get(key)
    if picked is None:
        outputs: list[Any] = []

        def record(_: nn.Module, __: Any, out: Any) -> None:
            if threading.get_ident() == me:
                outputs.append(keep(out))

        with _hooked(blocks, record), torch.no_grad(), _FastConvolutions():
            module(_fresh(x))
        index = pick(outputs)
        picked = (index, isinstance(outputs[index], list))
        with _PICKS_LOCK:
            _PICKS.setdefault(module, {})[key] = picked
    index, pathways = picked
    taken: list[Any] = []

    def enter(_: nn.Module, __: Any) -> None:
        if threading.get_ident() == me:
            torch.set_grad_enabled(True)  # the block, the blocks above and the head: in the graph

    def cut(_: nn.Module, __: Any, out: Any) -> Any:
        if threading.get_ident() != me:
            return None
        if pathways:
            taken.append(keep(out))  # in the graph since ``enter``
            return None
        leaf = out.detach().requires_grad_(True)
        taken.append(leaf)
        torch.set_grad_enabled(True)  # the blocks above and the head: in the graph
        return leaf

    block = blocks[index]
    with ExitStack() as stack:
        if pathways:
            stack.callback(block.register_forward_pre_hook(enter).remove)
        stack.enter_context(_hooked([block], cut))
        with torch.no_grad(), _FastConvolutions():  # leaving no_grad restores the grad mode
            scores = module(_fresh(x))
    if len(taken) != 1 or not scores.requires_grad:
        raise ExplainUnsupported("the picked block did not run once in the model's forward")
    return scores, taken[0]


class _FastConvolutions(TorchFunctionMode):
    """``conv3d`` for the explainer (a mode holds for its own thread only). PyTorch's CPU
    heuristics send most of X3D's batch-1, one-thread convolutions (the pointwise ones, and the
    stem's 5x1x1 per channel) to plain loops; without a graph every one runs on oneDNN here, on
    channels-last clips (``head_graph``), its fastest layout. In the graph, a depthwise
    convolution's input gradient takes 20x its forward; with stride 1 and "same" padding it is
    the forward with the kernel flipped (``_DepthwiseSame``). Same values up to float rounding
    (about 1e-6 on the maps); an X3D-S map takes about 0.6x the CPU time of PyTorch's paths."""

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if func is torch.conv3d:
            return _conv3d(*args, **kwargs)
        return func(*args, **kwargs)


def _conv3d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> torch.Tensor:
    if isinstance(padding, str) or not _fast(x):
        return torch.conv3d(x, weight, bias, stride, padding, dilation, groups)
    stride, padding, dilation = _triple(stride), _triple(padding), _triple(dilation)
    if not (torch.is_grad_enabled() and x.requires_grad):
        return torch.mkldnn_convolution(x, weight, bias, padding, stride, dilation, groups)
    depthwise = groups == weight.shape[0] == x.shape[1] and weight.shape[1] == 1
    same = all(2 * p == k - 1 for p, k in zip(padding, weight.shape[2:], strict=True))
    if not (depthwise and same and stride == dilation == (1, 1, 1)):
        return torch.conv3d(x, weight, bias, stride, padding, dilation, groups)
    out: torch.Tensor = _DepthwiseSame.apply(x, weight.detach(), padding)  # no gradient for the weights
    return out if bias is None else out + bias.detach().view(1, -1, 1, 1, 1)


def _channels_last(x: Any) -> Any:
    """A clip in channels-last order, oneDNN's fastest layout for these convolutions."""
    if isinstance(x, torch.Tensor) and x.dim() == 5 and _fast(x):
        return x.contiguous(memory_format=torch.channels_last_3d)
    return x


def _fast(x: torch.Tensor) -> bool:
    """Whether oneDNN takes ``x`` (float32 on the CPU)."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and torch.backends.mkldnn.is_available()


class _DepthwiseSame(torch.autograd.Function):
    """A depthwise, stride-1, "same" 3D convolution whose input gradient is the convolution of
    the output's gradient with the flipped kernel (what the transposed convolution reduces to)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, padding: tuple[int, ...]) -> torch.Tensor:
        ctx.save_for_backward(weight)
        ctx.padding = padding
        return _depthwise(x, weight, padding)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (weight,) = ctx.saved_tensors
        # "same" padding, (k - 1) / 2, is also the flipped kernel's: k - 1 - (k - 1) / 2
        return _depthwise(grad.contiguous(), weight.flip(2, 3, 4), ctx.padding), None, None


def _depthwise(x: torch.Tensor, weight: torch.Tensor, padding: tuple[int, ...]) -> torch.Tensor:
    ones = (1, 1, 1)
    return torch.mkldnn_convolution(x, weight, None, padding, ones, ones, weight.shape[0])


def _triple(value: Any) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, tuple | list) else (value, value, value)


def _fresh(x: Any) -> Any:
    """A new list of pathways for each forward: SlowFast's fusion may fill the one it gets."""
    return list(x) if isinstance(x, list) else x


@contextmanager
def _hooked(blocks: list[nn.Module], hook: Callable[[nn.Module, Any, Any], Any]) -> Iterator[None]:
    handles = [block.register_forward_hook(hook) for block in blocks]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def normalised(class_id: int, cam: torch.Tensor, frames: int) -> Cam:
    """A raw non-negative map (t, h, w) scaled to peak 1, with per-frame weights: frame ``k`` of
    ``frames`` takes time step ``k * t // frames``'s mass, over the largest step's."""
    peak = float(cam.max())
    cam = cam / peak if peak > 0 else torch.zeros_like(cam)
    mass = cam.sum(dim=(1, 2))
    top = float(mass.max())
    steps = (mass / top if top > 0 else mass).tolist()
    t = len(steps)
    weights = tuple(float(steps[min(t - 1, k * t // frames)]) for k in range(frames))
    return Cam(class_id, cam, weights)


@dataclass(frozen=True)
class Geometry:
    """How the model's crop sits in the displayed (upright) frame: the frame, ``display``
    (height, width), was scaled to ``scaled`` (height, width) and the crop of side ``crop``
    taken at ``offset`` (y, x) of the scaled frame."""

    display: tuple[int, int]
    scaled: tuple[int, int]
    crop: int
    offset: tuple[int, int]


def register(cam: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """A crop's map (t, h, w) as a grid (t, gh, gw) over the whole displayed frame, 0..1.

    The map is stretched over the crop (bilinear), placed at the crop's offset in the scaled
    frame (zero outside the crop), then averaged down to cells of about the map's own size:
    ``gh = round(scaled_h * h / crop)``, likewise ``gw``. The scaled frame is the displayed
    one scaled uniformly, so cell (i, j) covers rows ``[i*H/gh, (i+1)*H/gh)`` and columns
    ``[j*W/gw, (j+1)*W/gw)`` of the displayed H x W frame."""
    t, h, w = cam.shape
    (sh, sw), size, (y, x) = geometry.scaled, geometry.crop, geometry.offset
    rows, columns = _stretch(h, size), _stretch(w, size)
    stretched = torch.einsum("yh,thw,xw->tyx", rows, cam.float(), columns)
    canvas = torch.zeros((t, sh, sw))
    canvas[:, y : y + size, x : x + size] = stretched
    grid = (max(1, round(sh * h / size)), max(1, round(sw * w / size)))
    out = F.adaptive_avg_pool2d(canvas[None], grid)[0]
    peak = float(out.max())
    return out / peak if peak > 0 else out


def _stretch(cells: int, size: int) -> torch.Tensor:
    """(size, cells) linear interpolation weights from a feature axis to the crop's pixels.

    Feature cell ``i`` of a stage with total stride ``s = size / cells`` is centred on crop
    pixel ``i * s``: every strided layer of these networks (convolutions and pools with odd
    kernels and "same" padding) centres its output ``i`` on input ``2 * i``. A plain resize
    (``align_corners=False``) would put it at ``(i + 0.5) * s``, ``(s - 1) / 2`` pixels to the
    right and below: for the demo model's stride-8 grid, 3.5 crop pixels, 13 pixels of a
    320x240 frame, which put peaks a cell beside a moving object."""
    u = (torch.arange(size, dtype=torch.float32) * cells / size).clamp(max=cells - 1)
    low = u.floor().long()
    high = (low + 1).clamp(max=cells - 1)
    frac = u - low.float()
    weights = torch.zeros(size, cells)
    weights[torch.arange(size), low] += 1 - frac
    weights[torch.arange(size), high] += frac
    return weights


def cell_box(
    shape: tuple[int, int], display: tuple[int, int], i: int, j: int
) -> tuple[float, float, float, float]:
    """Cell (i, j) of a (gh, gw) grid in displayed-frame pixels: (x0, y0, x1, y1)."""
    (gh, gw), (height, width) = shape, display
    return (j * width / gw, i * height / gh, (j + 1) * width / gw, (i + 1) * height / gh)


def rounded(values: torch.Tensor) -> list[Any]:
    """A map as nested lists of floats rounded to 3 decimals (the results' ``data``)."""
    out: list[Any] = torch.round(values.double() * 1000).div(1000).tolist()
    return out


def display_size(width: int, height: int, rotation: int) -> tuple[int, int]:
    """(height, width) of the displayed frame: a quarter turn swaps the coded sides."""
    return (width, height) if math.isclose(rotation % 180, 90) else (height, width)
