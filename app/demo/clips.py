"""Clip sampling and preprocessing for the demo model (torch side; training and self-check).

This mirrors, step for step, what the analysis engine does at inference for a
manifest entry with ``frames=8, sampling_rate=4, short_side=64, crop=64`` and
mean/std 0.45/0.225 (the PyTorchVideo X3D recipe):

1. a window of ``frames * sampling_rate / 30`` seconds of video;
2. ``frames`` frames chosen by ``linspace(0, n - 1, frames)`` (truncated, as
   ``pytorchvideo.transforms.functional.uniform_temporal_subsample`` does) over the
   ``n`` decoded frames in the window;
3. RGB uint8 -> float / 255 -> per-channel ``(x - mean) / std``;
4. short side scaled to ``short_side`` (bilinear, ``align_corners=False``, the
   pytorchvideo ``short_side_scale`` size rule);
5. centre crop ``crop`` x ``crop``.

Training on anything else would make the known-answer tests test a different
pipeline from the one that ships, so the training script and the self-check both
use this module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

FRAMES = 8
SAMPLING_RATE = 4
SOURCE_FPS = 30
SHORT_SIDE = 64
CROP = 64
MEAN = (0.45, 0.45, 0.45)
STD = (0.225, 0.225, 0.225)


def window_seconds(frames: int = FRAMES, sampling_rate: int = SAMPLING_RATE) -> float:
    """Length of the video window one clip covers (1.067 s for 8 x 4 at 30 fps)."""
    return frames * sampling_rate / SOURCE_FPS


def sample_indices(n: int, frames: int = FRAMES) -> list[int]:
    """Indices of ``frames`` frames spread over ``n`` (``torch.linspace`` then truncate)."""
    if n <= 0:
        raise ValueError("a clip window needs at least one frame")
    idx = torch.clamp(torch.linspace(0, n - 1, frames), 0, n - 1).long()
    return [int(i) for i in idx]


def window_frames(
    frames: Sequence[npt.NDArray[np.uint8]], times: Sequence[float], start: float, seconds: float
) -> list[npt.NDArray[np.uint8]]:
    """Decoded frames whose presentation time lies in ``[start, start + seconds)``."""
    eps = 1e-6
    return [f for f, t in zip(frames, times, strict=True) if start - eps <= t < start + seconds - eps]


def preprocess(
    frames: Sequence[npt.NDArray[np.uint8]],
    *,
    short_side: int = SHORT_SIDE,
    crop: int = CROP,
    mean: Sequence[float] = MEAN,
    std: Sequence[float] = STD,
) -> torch.Tensor:
    """RGB uint8 frames (T x H x W x 3) -> normalised float tensor (3, T, crop, crop)."""
    x = torch.from_numpy(np.ascontiguousarray(np.stack(frames))).permute(3, 0, 1, 2).float() / 255.0
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1, 1)
    x = (x - m) / s
    _, _, h, w = x.shape
    if w < h:
        new_h, new_w = math.floor(h / w * short_side), short_side
    else:
        new_h, new_w = short_side, math.floor(w / h * short_side)
    x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)
    top = round((new_h - crop) / 2)
    left = round((new_w - crop) / 2)
    return x[:, :, top : top + crop, left : left + crop].contiguous()


def clip_at(
    frames: Sequence[npt.NDArray[np.uint8]],
    times: Sequence[float],
    centre: float,
    frames_per_clip: int = FRAMES,
    sampling_rate: int = SAMPLING_RATE,
    *,
    short_side: int = SHORT_SIDE,
    crop: int = CROP,
    mean: Sequence[float] = MEAN,
    std: Sequence[float] = STD,
) -> torch.Tensor:
    """Preprocessed clip of the window centred on ``centre`` seconds (clamped to the video)."""
    seconds = window_seconds(frames_per_clip, sampling_rate)
    end_time = times[-1] + (times[-1] - times[0]) / max(len(times) - 1, 1)
    start = min(max(centre - seconds / 2, times[0]), max(end_time - seconds, times[0]))
    chosen = window_frames(frames, times, start, seconds)
    if not chosen:
        raise ValueError(f"no frames in the window starting at {start:.3f} s")
    picked = [chosen[i] for i in sample_indices(len(chosen), frames_per_clip)]
    return preprocess(picked, short_side=short_side, crop=crop, mean=mean, std=std)
