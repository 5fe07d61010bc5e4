"""PyTorchVideo's test-time clip transform, re-implemented (``pytorchvideo.transforms`` no longer imports).

Reference chain (torch-hub tutorial, PySlowFast ``Ptvkinetics`` test branch):
subsample -> /255 -> normalize(mean, std) -> ShortSideScale (bilinear, align_corners=False,
long side ``floor(long/short*size)``) -> one centre crop as torchvision's ``CenterCropVideo``
(offset ``round((dim-size)/2)``, halves to even), or 3 uniform crops (offsets 0,
``ceil((dim-size)/2)``, ``dim-size``) -> SlowFast PackPathway.

Every step but the crop acts on each frame alone, so frames are scaled and normalised one
at a time as they are decoded (memory: one small float frame instead of a full-size RGB
one); normalising after the resize is the same linear map up to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from app.analysis.clip_views import ClipInput, pack_pathway
from app.analysis.prep import crop_offsets, short_side_size, view_offsets
from app.analysis.spec import ModelSpec

__all__ = ["ClipInput", "ClipTransform", "crop_offsets", "pack_pathway", "short_side_size"]


def _resize(frame: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """Streams that change resolution mid-clip: match the clip's first frame."""
    return F.interpolate(frame[None], size=(size[0], size[1]), mode="bilinear", align_corners=False)[0]


@dataclass(frozen=True)
class ClipTransform:
    """Frame preparation and view assembly for one model and one crop mode."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    short_side: int
    crop: int
    crops: int = 1
    alpha: int | None = None
    bgr: bool = False

    @classmethod
    def for_spec(cls, spec: ModelSpec, crops: int = 1) -> ClipTransform:
        short_side, crop = spec.crop_geometry(crops)
        return cls(
            mean=spec.mean,
            std=spec.std,
            short_side=short_side,
            crop=crop,
            crops=crops,
            alpha=spec.alpha,
            bgr=spec.channel_order == "bgr",
        )

    def prepare_frame(self, rgb: np.ndarray) -> torch.Tensor:
        """RGB uint8 (H, W, 3) -> float32 (3, h, w): short side scaled, normalised, maybe BGR."""
        height, width = rgb.shape[:2]
        x = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).float()
        x = F.interpolate(
            x, size=short_side_size(height, width, self.short_side), mode="bilinear", align_corners=False
        )
        x = x[0]
        scale = torch.tensor([1.0 / (255.0 * s) for s in self.std]).view(3, 1, 1)
        shift = torch.tensor([m / s for m, s in zip(self.mean, self.std, strict=True)]).view(3, 1, 1)
        x = x.mul_(scale).sub_(shift)
        return x.flip(0) if self.bgr else x

    def views(self, frames: Sequence[torch.Tensor]) -> list[ClipInput]:
        """Stack T prepared frames into the clip's views (1 or 3 crops, numpy), packed for SlowFast."""
        first = frames[0].shape[-2:]
        same = [f if f.shape[-2:] == first else _resize(f, first) for f in frames]
        clip = torch.stack(same, dim=1)
        height, width = clip.shape[-2:]
        out: list[ClipInput] = []
        for y, x in view_offsets(height, width, self.crop, self.crops):
            view = clip[:, :, y : y + self.crop, x : x + self.crop].contiguous().numpy()
            out.append(pack_pathway(view, self.alpha) if self.alpha else view)
        return out
