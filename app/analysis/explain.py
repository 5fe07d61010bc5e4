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
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

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

    The module is used as is (eval mode, shared with inference): the graph is built on a clone
    of the input (``torch.enable_grad`` inside whatever inference mode the caller is in) and
    only the layer's gradient is taken from it, so no parameter gets a ``.grad`` and the
    weights are untouched."""
    blocks = feature_blocks(module)
    outputs: list[Any] = []

    def keep(_: nn.Module, __: Any, out: Any) -> None:
        outputs.append(out)

    handles = [block.register_forward_hook(keep) for block in blocks]
    try:
        with torch.inference_mode(False), torch.enable_grad():
            device = next(module.parameters()).device
            x = view.detach().to(device).clone().unsqueeze(0).requires_grad_(True)
            scores = module(x)
            activation = outputs[_pick(outputs)]
            cams = []
            for n, class_id in enumerate(class_ids):
                # autograd.grad, not backward: no gradient lands on the shared parameters
                (grad,) = torch.autograd.grad(
                    scores[0, class_id], activation, retain_graph=n + 1 < len(class_ids)
                )
                cam = torch.relu((grad[0] * activation[0].detach()).sum(dim=0))
                cams.append(normalised(class_id, cam.cpu(), view.shape[1]))
    finally:
        for handle in handles:
            handle.remove()
    return cams


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
