"""SlowFast explained: HiResCAM on each pathway's last feature block, fused into one map.

Each pathway gets HiResCAM (``explain.py``) from the deepest block before the head whose
output is the two pathways with grids of at least ``MIN_GRID`` cells on their short side.
The two maps live on different grids (the slow pathway has ``alpha`` times fewer time steps;
at 224-256-pixel crops both are 7-8 cells across), so each is resampled to the finer grid and
the two are added **by mass**: a cell of HiResCAM, ``relu(sum_c dS/dA_c * A_c)``, is that
cell's share of the class score (exactly so for SlowFast's head, an average pool and a linear
layer per concatenated pathway), so a pathway's map is resampled as a density (values scaled
by its cells over the common grid's cells) and the densities are summed. Each pathway thus
weighs in with its own positive evidence, its gradient-times-activation mass, and neither
pathway's map is stretched to peak 1 before the sum (which would give a pathway the head
barely uses an equal say). The sum is then scaled to peak 1 and gets frame weights like
every map (``explain.normalised``), one per fast-pathway frame.

Time is resampled with ``align_corners=True``: the slow frames are
``linspace(0, T - 1, T // alpha)`` of the fast ones (``transforms.pack_pathway``), so the first
and last steps of both pathways sit on the clip's first and last frames.

pytorchvideo's SlowFast ``forward`` writes each block's outputs into the list it was given
(``MultiPathWayWithFuse``), so the model gets a fresh list and the hooks keep copies of theirs.
Only the picked block, the blocks above it and the head get an autograd graph (``explain.head_graph``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from app.analysis.explain import MIN_GRID, Cam, ExplainUnsupported, feature_blocks, head_graph, normalised

METHOD = "hirescam-slowfast-fused"


def _pick(outputs: list[Any]) -> int:
    """Index of the multi-pathway block the maps are taken from."""
    usable = [
        i
        for i, out in enumerate(outputs)
        if isinstance(out, list)
        and len(out) > 1
        and all(isinstance(o, torch.Tensor) and o.dim() == 5 for o in out)
    ]
    if not usable:
        raise ExplainUnsupported("no block before the head gives one 3D feature map per pathway")
    for i in reversed(usable):
        if all(min(o.shape[-2:]) >= MIN_GRID for o in outputs[i]):
            return i
    return usable[-1]


def fuse(cams: list[torch.Tensor]) -> torch.Tensor:
    """Pathway maps (t_p, h_p, w_p), each a non-negative score density per cell, summed on the
    finest grid with their mass kept (see the module docstring)."""
    size = tuple(max(int(c.shape[d]) for c in cams) for d in range(3))
    cells = size[0] * size[1] * size[2]
    fused = torch.zeros(size)
    for cam in cams:
        resampled = F.interpolate(cam[None, None].float(), size=size, mode="trilinear", align_corners=True)[
            0, 0
        ]
        fused += resampled * (cam.numel() / cells)
    return fused


def slowfast_cam(module: nn.Module, view: list[torch.Tensor], class_ids: list[int]) -> list[Cam]:
    """Fused HiResCAM of a SlowFast ``view`` ([slow (3, T/alpha, S, S), fast (3, T, S, S)]) for
    each class id; the model and its parameters are left as they were (see ``explain.grad_cam``)."""
    if not isinstance(view, list) or len(view) < 2:
        raise ExplainUnsupported("a SlowFast clip is a list of pathways")
    blocks = feature_blocks(module)
    device = next(module.parameters()).device
    x = [v.detach().to(device).clone().unsqueeze(0) for v in view]
    with torch.inference_mode(False):
        scores, activations = head_graph(module, blocks, x, _pick, _copy)
        cams = []
        for n, class_id in enumerate(class_ids):
            grads = torch.autograd.grad(scores[0, class_id], activations, retain_graph=n + 1 < len(class_ids))
            per_pathway = [
                torch.relu((g[0] * a[0].detach()).sum(dim=0)).cpu()
                for g, a in zip(grads, activations, strict=True)
            ]
            cams.append(normalised(class_id, fuse(per_pathway), view[-1].shape[1]))
    return cams


def _copy(out: Any) -> Any:
    return list(out) if isinstance(out, list) else out  # the next block overwrites ``out``
