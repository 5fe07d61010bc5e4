"""The demo detection pair's networks (torch): a person stand-in detector and an action head.

Both are built by the catalog from ``models/manifest.json`` (``builder`` + ``builder_kwargs``)
and trained by ``scripts/train_demo_detection.py`` on :mod:`app.demo.detection_scene`.

* :func:`demo_person_detector` -> :class:`StandInDetector`: a tiny CenterNet (a centre heatmap,
  a box-size and a sub-cell offset map at 1/4 of a frame scaled to a 64-pixel short side). It
  has ``detect`` (the :class:`~app.analysis.detection_types.PersonDetector` protocol), so the
  pipeline uses it as is.
* :func:`demo_action_detector` -> :class:`ActionHead`: a small 3D CNN whose last map is
  pooled to two time steps, then RoIAlign per box, as pytorchvideo's detection models are
  called: ``forward(clip (B, 3, T, H, W), bboxes (N, 5) [batch index, x1, y1, x2, y2] clip
  pixels) -> (N, classes)`` logits (the pipeline applies the sigmoid).

Each box is widened before pooling (:attr:`ActionHead.context`, at least
:attr:`ActionHead.min_window` of the clip's short side): an object moves out of its keyframe
box within the clip, and its motion is the evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from app.analysis.detection_types import PersonBox, clamp_box
from app.analysis.prep import short_side_size

MEAN = 0.45
STD = 0.225
STRIDE = 4
"""Heatmap cells per input pixel side of the detector, and the action trunk's spatial stride."""


def _conv2d(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def scale_frames(frames: torch.Tensor, short_side: int) -> torch.Tensor:
    """(..., H, W) float frames -> short side ``short_side`` (bilinear, align_corners=False, the
    engine's size rule), as the pipeline scales a detection clip."""
    h, w = frames.shape[-2:]
    size = short_side_size(h, w, short_side)
    flat = frames.reshape(-1, *frames.shape[-3:]) if frames.dim() > 3 else frames[None]
    out = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
    return out.reshape(*frames.shape[:-2], *size)


class StandInDetector(nn.Module):
    """Finds the demo's objects on single frames; ``forward`` gives (heat logits, log size, offset)."""

    score_scale: torch.Tensor
    score_shift: torch.Tensor

    def __init__(self, short_side: int = 64, width: int = 32, max_objects: int = 10) -> None:
        super().__init__()
        self.short_side, self.max_objects = short_side, max_objects
        self.trunk = nn.Sequential(
            _conv2d(3, width // 2, 2),
            _conv2d(width // 2, width),
            _conv2d(width, width, 2),
            _conv2d(width, width, dilation=2),
            _conv2d(width, width, dilation=4),
            _conv2d(width, width),
        )
        self.heat = nn.Conv2d(width, 1, 1)
        self.size = nn.Conv2d(width, 2, 1)
        self.offset = nn.Conv2d(width, 2, 1)
        bias = self.heat.bias
        assert bias is not None
        nn.init.constant_(bias, -2.2)  # CenterNet: start from "mostly background"
        # Platt scaling of the log heat mass around a peak (its 3x3 cells), fitted after training
        # on held-out scenes: the score is then the chance that the peak is one of the scene's
        # objects, as ``person_min_score`` (0.8 by default, a Faster R-CNN's) reads it. A raw
        # CenterNet peak is no probability, and an object whose centre falls between two cells
        # splits its peak; the mass does not (held-out recall at 0.8: 98.6 % vs 96.6 %).
        self.register_buffer("score_scale", torch.ones(()))
        self.register_buffer("score_shift", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x``: normalised (B, 3, H, W) at the detector's scale -> maps at 1/:data:`STRIDE`."""
        f = self.trunk(x)
        return self.heat(f), self.size(f), self.offset(f)

    def prepare(self, image: npt.NDArray[np.uint8]) -> torch.Tensor:
        """RGB uint8 (H, W, 3) -> normalised (3, h, w) at the detector's short side."""
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
        return scale_frames((x - MEAN) / STD, self.short_side)

    @torch.no_grad()
    def detect(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[list[PersonBox]]:
        """Every object on each image with its centre score, boxes normalised to that image."""
        self.eval()
        found = []
        device = self.heat.weight.device
        for image in images:
            x = self.prepare(image)[None].to(device)
            heat, size, offset = self(x)
            found.append(self.decode(heat[0, 0], size[0], offset[0], x.shape[-2], x.shape[-1]))
        return found

    def decode(
        self, heat: torch.Tensor, size: torch.Tensor, offset: torch.Tensor, height: int, width: int
    ) -> list[PersonBox]:
        """Local maxima of the heatmap (3x3) -> boxes, best first, at most ``max_objects``, each
        with its calibrated score."""
        score = torch.sigmoid(heat)
        peaks = (score == F.max_pool2d(score[None], 3, 1, 1)[0]) & (score >= 0.05)
        ys, xs = torch.nonzero(peaks, as_tuple=True)
        order = torch.argsort(score[ys, xs], descending=True)[: self.max_objects]
        mass = F.avg_pool2d(score[None], 3, 1, 1)[0] * 9
        sure = torch.sigmoid(self.score_scale * torch.log(mass) + self.score_shift)
        out = []
        for i in order.tolist():
            y, x = int(ys[i]), int(xs[i])
            cx = (x + float(offset[0, y, x])) * STRIDE
            cy = (y + float(offset[1, y, x])) * STRIDE
            w = float(torch.exp(size[0, y, x])) * STRIDE
            h = float(torch.exp(size[1, y, x])) * STRIDE
            box = clamp_box(
                ((cx - w / 2) / width, (cy - h / 2) / height, (cx + w / 2) / width, (cy + h / 2) / height)
            )
            if box[0] < box[2] and box[1] < box[3]:
                out.append(PersonBox(box=box, score=float(sure[y, x])))
        return out


def _conv3d(
    cin: int, cout: int, kernel: tuple[int, int, int], stride: tuple[int, int, int], dil: int = 1
) -> nn.Sequential:
    pad = (kernel[0] // 2, dil * (kernel[1] // 2), dil * (kernel[2] // 2))
    return nn.Sequential(
        nn.Conv3d(cin, cout, kernel, stride, pad, dilation=(1, dil, dil), bias=False),
        nn.BatchNorm3d(cout),
        nn.ReLU(inplace=True),
    )


class ActionHead(nn.Module):
    """A 3D CNN trunk (spatial stride 4, two time steps left) and an RoIAlign head per box."""

    def __init__(
        self,
        num_classes: int = 7,
        widths: Sequence[int] = (12, 24, 32, 48),
        resolution: int = 7,
        hidden: int = 128,
        context: float = 1.0,
        min_window: float = 0.5,
    ) -> None:
        super().__init__()
        c1, c2, c3, c4 = widths
        self.resolution, self.context, self.min_window = resolution, context, min_window
        self.trunk = nn.Sequential(
            _conv3d(3, c1, (3, 5, 5), (1, 2, 2)),
            _conv3d(c1, c2, (3, 3, 3), (1, 2, 2)),
            _conv3d(c2, c3, (3, 3, 3), (2, 1, 1)),
            _conv3d(c3, c4, (3, 3, 3), (2, 1, 1), dil=2),
        )
        self.reduce = nn.Sequential(nn.Conv2d(2 * c4, 32, 1), nn.ReLU(inplace=True))
        self.mlp = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * resolution * resolution, hidden), nn.ReLU(inplace=True)
        )
        self.proj = nn.Linear(hidden, num_classes)

    def windows(self, bboxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Each (N, 5) box widened by ``context`` per side, at least ``min_window`` of the short side."""
        b = bboxes.clone().float()
        cx, cy = (b[:, 1] + b[:, 3]) / 2, (b[:, 2] + b[:, 4]) / 2
        least = self.min_window * min(height, width) / 2
        hw = torch.clamp((b[:, 3] - b[:, 1]) * (0.5 + self.context), min=least)
        hh = torch.clamp((b[:, 4] - b[:, 2]) * (0.5 + self.context), min=least)
        b[:, 1], b[:, 3], b[:, 2], b[:, 4] = cx - hw, cx + hw, cy - hh, cy + hh
        return b

    def forward(self, clip: torch.Tensor, bboxes: torch.Tensor) -> torch.Tensor:
        """Logits (N, classes) for each box of ``bboxes`` (N, 5) over ``clip`` (B, 3, T, H, W)."""
        f = self.trunk(clip)
        f = F.adaptive_avg_pool3d(f, (2, f.shape[-2], f.shape[-1]))
        f = f.flatten(1, 2)  # (B, 2 * C, h, w): both halves of the clip, side by side
        rois = self.windows(bboxes, clip.shape[-2], clip.shape[-1])
        pooled = roi_align(
            f, rois, self.resolution, spatial_scale=1.0 / STRIDE, sampling_ratio=2, aligned=True
        )
        logits: torch.Tensor = self.proj(self.mlp(self.reduce(pooled)))
        return logits


def demo_person_detector(short_side: int = 64, width: int = 32, max_objects: int = 10) -> StandInDetector:
    """Builder of ``demo_person_detector`` (``"task": "person_detector"``)."""
    return StandInDetector(short_side=short_side, width=width, max_objects=max_objects)


def demo_action_detector(**kwargs: Any) -> ActionHead:
    """Builder of ``demo_actions_detection`` (``"task": "detection"``): ``ActionHead``'s arguments."""
    return ActionHead(**kwargs)
