"""The clip transform of ``transforms.ClipTransform`` in numpy, for the decode child (no torch there).

Same steps, same float32 arithmetic: PyTorch's bilinear kernel (``align_corners=False``, no
antialias) for the short-side scale, then ``* 1/(255*std) - mean/std``, the optional BGR
flip, the same crop offsets, and the same rescale of frames whose size changed mid-clip.
The source indices and weights are computed in float32 exactly as ATen does; the blend order
and ATen's vectorised arithmetic differ slightly, so values agree to float rounding: at most
1e-3 grey levels before normalisation, 2e-5 after (``tests/unit/test_prep.py`` holds 1e-4,
the tolerance the torch transform is held to against pytorchvideo's definitions).

swscale's own scaler (``frame.reformat(width, height)``) is not used: its "bilinear" filters
over the whole downscaled footprint, PyTorch's samples 2x2 pixels, and the results differ by
many grey levels; it was also slower than converting at full size and scaling here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from app.analysis.spec import ModelSpec


def short_side_size(height: int, width: int, size: int) -> tuple[int, int]:
    """Output (h, w) of pytorchvideo's ``short_side_scale``."""
    if width < height:
        return math.floor(height / width * size), size
    return size, math.floor(width / height * size)


def crop_offsets(height: int, width: int, size: int, spatial_idx: int) -> tuple[int, int]:
    """(y, x) of pytorchvideo's ``uniform_crop``: 0/1/2 = left/centre/right (top/centre/bottom if portrait)."""
    y = math.ceil((height - size) / 2)
    x = math.ceil((width - size) / 2)
    if height > width:
        y = {0: 0, 1: y, 2: height - size}[spatial_idx]
    else:
        x = {0: 0, 1: x, 2: width - size}[spatial_idx]
    return y, x


@lru_cache(maxsize=64)
def _axis(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights along one axis, as ATen's ``compute_source_index_and_lambda``."""
    if in_size == out_size:
        idx = np.arange(out_size)
        return idx, idx, np.ones(out_size, np.float32), np.zeros(out_size, np.float32)
    scale = np.float32(in_size) / np.float32(out_size)
    dst = np.arange(out_size).astype(np.float32)
    real = scale * (dst + np.float32(0.5)) - np.float32(0.5)
    real = np.where(real < 0, np.float32(0), real).astype(np.float32)
    i0 = np.minimum(np.floor(real).astype(np.int64), in_size - 1)
    lam1 = np.clip(real - i0.astype(np.float32), np.float32(0), np.float32(1)).astype(np.float32)
    i1 = i0 + (i0 < in_size - 1)
    lam0 = (np.float32(1) - lam1).astype(np.float32)
    return i0, i1, lam0, lam1


def bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``F.interpolate(bilinear, align_corners=False)`` of an (H, W, C) image -> float32 (h, w, C).

    The 2x2 source pixels of every output pixel are gathered first (as uint8 when the input
    is, so only ``4*h*w`` values are ever converted), then blended along the width and then
    the height, the order of ATen's generic kernel."""
    h0, h1, lh0, lh1 = _axis(image.shape[0], height)
    w0, w1, lw0, lw1 = _axis(image.shape[1], width)
    top, bottom = image[h0], image[h1]
    out: np.ndarray = top[:, w0].astype(np.float32)
    right = top[:, w1].astype(np.float32)
    out *= lw0[None, :, None]
    right *= lw1[None, :, None]
    out += right
    low = bottom[:, w0].astype(np.float32)
    right = bottom[:, w1].astype(np.float32)
    low *= lw0[None, :, None]
    right *= lw1[None, :, None]
    low += right
    out *= lh0[:, None, None]
    low *= lh1[:, None, None]
    out += low
    return out


@dataclass(frozen=True)
class FramePrep:
    """Per-frame preparation and view assembly, numpy in and out (picklable, torch-free)."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    short_side: int
    crop: int
    crops: int = 1
    bgr: bool = False

    @classmethod
    def for_spec(cls, spec: ModelSpec, crops: int = 1) -> FramePrep:
        short_side, crop = spec.crop_geometry(crops)
        return cls(spec.mean, spec.std, short_side, crop, crops, spec.channel_order == "bgr")

    @property
    def views(self) -> int:
        return 1 if self.crops == 1 else 3

    def clip_shape(self, frames: int) -> tuple[int, int, int, int, int]:
        """(views, 3, T, crop, crop): what ``write_views`` fills."""
        return (self.views, 3, frames, self.crop, self.crop)

    def prepare_frame(self, rgb: np.ndarray) -> np.ndarray:
        """RGB uint8 (H, W, 3) -> float32 (h, w, 3): short side scaled, normalised, maybe BGR."""
        height, width = rgb.shape[:2]
        x = bilinear(rgb, *short_side_size(height, width, self.short_side))
        scale = np.array([1.0 / (255.0 * s) for s in self.std], dtype=np.float32)
        shift = np.array([m / s for m, s in zip(self.mean, self.std, strict=True)], dtype=np.float32)
        x *= scale
        x -= shift
        return x[..., ::-1] if self.bgr else x

    def write_views(self, frames: list[np.ndarray], out: np.ndarray) -> None:
        """Crop the clip's views of T prepared frames into ``out`` of ``clip_shape(T)``."""
        first = frames[0].shape[:2]
        for t, frame in enumerate(frames):
            same = frame if frame.shape[:2] == first else bilinear(frame, *first)
            height, width = same.shape[:2]
            for v, idx in enumerate([1] if self.crops == 1 else [0, 1, 2]):
                y, x = crop_offsets(height, width, self.crop, idx)
                out[v, :, t] = same[y : y + self.crop, x : x + self.crop].transpose(2, 0, 1)
