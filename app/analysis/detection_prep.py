"""A detection clip in the decode child: T frames scaled for the model + the keyframe, one slot.

The child (numpy + PyAV, no torch) writes each keyframe's clip into one shared-memory slot
of the ring ``DecodeSandbox`` already uses, so detection needs no protocol of its own:
``DetectionPrep`` is a ``FramePrep`` whose ``prepare_frame`` keeps the upright RGB frame and
whose ``write_views`` lays out, in float32 words,

    [display height, display width] [3 x T x h x w clip, normalised] [keyframe RGB uint8 bytes]

AVA's test transform (PySlowFast ``ava_dataset.py``, split ``test``; the PyTorchVideo
tutorial's ``ava_inference_transform``): short side scaled to ``short_side`` (256) with the
aspect kept and no crop, ``(x/255 - mean)/std``. The slot size does not depend on the
rotation (a quarter turn swaps h and w, not their product), so it is known from the scan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from app.analysis.detection_types import Box
from app.analysis.prep import FramePrep, bilinear, short_side_size
from app.analysis.spec import ModelSpec

_HEADER = 2


@dataclass(frozen=True)
class DetectionPrep(FramePrep):
    """``FramePrep`` for detection clips of a ``height`` x ``width`` video (either orientation)."""

    height: int = 0
    width: int = 0

    @classmethod
    def for_video(cls, spec: ModelSpec, height: int, width: int) -> DetectionPrep:
        if height < 1 or width < 1:
            raise ValueError(f"no frame size known ({width}x{height})")
        return cls(
            spec.mean,
            spec.std,
            spec.short_side,
            spec.short_side,
            1,
            spec.channel_order == "bgr",
            height,
            width,
        )

    def _clip_size(self, height: int, width: int) -> tuple[int, int]:
        return short_side_size(height, width, self.short_side)

    def clip_shape(self, frames: int) -> tuple[int, int, int, int, int]:
        """One flat float32 run (see the module doc); T = ``frames``, plus the keyframe."""
        h, w = self._clip_size(self.height, self.width)
        words = _HEADER + 3 * frames * h * w + math.ceil(self.height * self.width * 3 / 4)
        return (1, 1, 1, 1, words)

    def prepare_frame(self, rgb: np.ndarray) -> np.ndarray:
        """The upright RGB frame as decoded: the clip is scaled in ``write_views`` and the
        keyframe must stay whole for the person detector."""
        return rgb

    def _display(self, frame: np.ndarray) -> tuple[int, int]:
        """The video's size in the frame's orientation (portrait frames: the long side is h)."""
        long, short = max(self.height, self.width), min(self.height, self.width)
        return (long, short) if frame.shape[0] > frame.shape[1] else (short, long)

    def write_views(self, frames: list[np.ndarray], out: np.ndarray) -> None:
        """``frames``: the clip's T frames, then the keyframe (upright RGB uint8)."""
        *clip_frames, key = frames
        dh, dw = self._display(key)
        h, w = self._clip_size(dh, dw)
        flat = out.reshape(-1)
        flat[0], flat[1] = dh, dw
        clip = flat[_HEADER : _HEADER + 3 * len(clip_frames) * h * w].reshape(3, len(clip_frames), h, w)
        channels = [2, 1, 0] if self.bgr else [0, 1, 2]
        for t, frame in enumerate(clip_frames):
            clip[:, t] = bilinear(frame, h, w)[:, :, channels].transpose(2, 0, 1)
        for c, rgb in enumerate(channels):
            clip[c] *= np.float32(1.0 / (255.0 * self.std[rgb]))
            clip[c] -= np.float32(self.mean[rgb] / self.std[rgb])
        if key.shape[:2] != (dh, dw):  # the stream changed size: keep the slot's layout
            key = np.clip(np.rint(bilinear(key, dh, dw)), 0, 255).astype(np.uint8)
        tail = flat[_HEADER + 3 * len(clip_frames) * h * w :].view(np.uint8)
        tail[: dh * dw * 3] = key.reshape(-1)

    def unpack(self, views: np.ndarray, frames: int) -> tuple[np.ndarray, np.ndarray]:
        """(clip float32 (3, T, h, w), keyframe uint8 (H, W, 3)) of a slot ``write_views`` filled."""
        flat = views.reshape(-1)
        dh, dw = int(flat[0]), int(flat[1])
        h, w = self._clip_size(dh, dw)
        end = _HEADER + 3 * frames * h * w
        clip = flat[_HEADER:end].reshape(3, frames, h, w).copy()
        key = flat[end:].view(np.uint8)[: dh * dw * 3].reshape(dh, dw, 3).copy()
        return clip, key


def to_clip_pixels(box: Box, height: int, width: int) -> tuple[float, float, float, float]:
    """A normalised display box in the scaled clip's pixels, clipped as the tutorial's
    ``clip_boxes_to_image`` does (x in [0, w-1], y in [0, h-1])."""
    x1, y1, x2, y2 = box
    return (
        min(max(x1 * width, 0.0), width - 1.0),
        min(max(y1 * height, 0.0), height - 1.0),
        min(max(x2 * width, 0.0), width - 1.0),
        min(max(y2 * height, 0.0), height - 1.0),
    )
