"""The clip transform of ``transforms.ClipTransform`` in numpy, for the decode child (no torch there).

Same steps, same float32 arithmetic: PyTorch's bilinear kernel (``align_corners=False``, no
antialias) for the short-side scale, then ``* 1/(255*std) - mean/std``, the optional BGR
flip, the same crop offsets, and the same rescale of frames whose size changed mid-clip.
The source indices and weights are the very float32 values ATen computes (``_axis``); the
blend order and ATen's vectorised arithmetic differ slightly, so values agree to float
rounding: measured at most 3e-5 grey levels before normalisation, 1e-6 after (random frames
from 71x97 to 1080p; ``tests/unit/test_tutorial_transform.py`` holds both transforms to the
Torch Hub tutorial's within 1e-5 on real files).

Where the time goes (720p -> 182x323, per sampled frame): the RGB conversion by swscale
~0.5 ms, the resize ~2.3 ms. The resize gathers whole RGB triplets from the frame seen as
(H, W*3) rows, so every blend is a run over contiguous rows (the (H, W, 3) form broadcast
over a trailing axis of 3 and took twice as long); the normalisation runs once per clip on
the cropped views, channel by channel, instead of on each whole scaled frame. Both give the
very same float32 values as before.

swscale's own scaler (``frame.reformat(width, height)``) is not used: measured on the
benchmark video (textured 720p), its FAST_BILINEAR, BILINEAR, AREA and POINT modes are 8 to
16 grey levels from PyTorch's bilinear on average (up to 100-200), because they filter a
different footprint at other sampling positions; no tolerance worth the name admits that.
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


def center_offsets(height: int, width: int, size: int) -> tuple[int, int]:
    """(y, x) of torchvision's ``CenterCropVideo``, the one-crop step of the Torch Hub tutorial:
    ``int(round((dim - size) / 2))``, halves to even. ``uniform_crop``'s centre rounds halves
    up, so where ``dim - size`` is odd the two can be a pixel apart (323 - 182: 70 vs 71)."""
    return round((height - size) / 2), round((width - size) / 2)


def view_offsets(height: int, width: int, size: int, crops: int) -> list[tuple[int, int]]:
    """Each view's (y, x): one crop as the tutorial (``center_offsets``); three as the
    published evaluation (``uniform_crop`` 0, 1, 2)."""
    if crops == 1:
        return [center_offsets(height, width, size)]
    return [crop_offsets(height, width, size, idx) for idx in (0, 1, 2)]


@lru_cache(maxsize=64)
def _axis(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights along one axis, as ATen's ``compute_source_index_and_lambda``.

    ATen's source index ``scale * (dst + 0.5) - 0.5`` is one fused multiply-add, rounded
    once to float32 (its AVX2, AVX-512 and ARM64 kernels are compiled with FMA): evaluated
    in float64 it is exact, then rounded once. Two float32 roundings put the index an ulp
    off in a few columns (2 of 241 for 340 -> 241), 1e-3 grey levels in the output."""
    if in_size == out_size:
        idx = np.arange(out_size)
        return idx, idx, np.ones(out_size, np.float32), np.zeros(out_size, np.float32)
    scale = np.float64(np.float32(in_size) / np.float32(out_size))
    dst = (np.arange(out_size).astype(np.float32) + np.float32(0.5)).astype(np.float64)
    real = (scale * dst - 0.5).astype(np.float32)
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
    rows, cols, channels = image.shape
    h0, h1, lh0, lh1 = _axis(rows, height)
    c0, c1, lw0, lw1 = _columns(cols, width, channels)
    flat = np.ascontiguousarray(image).reshape(rows, cols * channels)
    top, bottom = flat[h0], flat[h1]
    out: np.ndarray = top.take(c0, axis=1).astype(np.float32)
    right = top.take(c1, axis=1).astype(np.float32)
    out *= lw0
    right *= lw1
    out += right
    low = bottom.take(c0, axis=1).astype(np.float32)
    right = bottom.take(c1, axis=1).astype(np.float32)
    low *= lw0
    right *= lw1
    low += right
    out *= lh0[:, None]
    low *= lh1[:, None]
    out += low
    return out.reshape(height, width, channels)


@lru_cache(maxsize=64)
def _columns(
    in_size: int, out_size: int, channels: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``_axis`` along the width, for rows seen flat: each source column index stands for its
    ``channels`` values, each weight is repeated for them."""
    w0, w1, lw0, lw1 = _axis(in_size, out_size)
    offsets = np.arange(channels)
    c0 = (w0[:, None] * channels + offsets).ravel()
    c1 = (w1[:, None] * channels + offsets).ravel()
    return c0, c1, np.repeat(lw0, channels), np.repeat(lw1, channels)


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
        """RGB uint8 (H, W, 3) -> float32 (h, w, 3), short side scaled (``write_views``
        normalises the cropped views, and turns them BGR if need be)."""
        height, width = rgb.shape[:2]
        return bilinear(rgb, *short_side_size(height, width, self.short_side))

    def write_views(self, frames: list[np.ndarray], out: np.ndarray) -> None:
        """Crop the clip's views of T prepared frames into ``out`` of ``clip_shape(T)``, normalised."""
        first = frames[0].shape[:2]
        channels = slice(None, None, -1) if self.bgr else slice(None)
        for t, frame in enumerate(frames):
            same = frame if frame.shape[:2] == first else bilinear(frame, *first)
            height, width = same.shape[:2]
            for v, (y, x) in enumerate(view_offsets(height, width, self.crop, self.crops)):
                out[v, :, t] = same[y : y + self.crop, x : x + self.crop, channels].transpose(2, 0, 1)
        scale = [np.float32(1.0 / (255.0 * s)) for s in self.std]
        shift = [np.float32(m / s) for m, s in zip(self.mean, self.std, strict=True)]
        for c, rgb in enumerate([2, 1, 0] if self.bgr else [0, 1, 2]):
            out[:, c, : len(frames)] *= scale[rgb]
            out[:, c, : len(frames)] -= shift[rgb]
