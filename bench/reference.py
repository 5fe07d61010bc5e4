"""The PyTorchVideo tutorial pipeline, as users write it (the benchmark's reference).

    .venv/bin/python bench/reference.py VIDEO --model x3d_s --models-dir bench/out/models

``EncodedVideo.from_path`` -> ``get_clip(t, t + 2)`` for every 2 s segment ->
UniformTemporalSubsample -> /255 -> NormalizeVideo -> ShortSideScale -> CenterCropVideo ->
the model on one clip at a time -> softmax -> top-5 (torch-hub inference tutorial).
``pytorchvideo.transforms`` no longer imports with this torchvision, so its three
transforms are written out below from their definitions in
``pytorchvideo/transforms/{transforms,functional}.py``; torchvision's video transforms are
used as the tutorial imports them. The clip geometry (frames, short side, crop) is the
catalog's for the model, so the model does exactly the work it does in our engine.

One change from the tutorial: ``torch.set_num_threads(1)``. On a 2-vCPU machine the
default (2 intra-op threads) made X3D 10-20x slower; the reference is run at its best.
``--device cuda`` runs the model on the GPU as the tutorial's ``device`` does (the clip moved
after the CPU transform) and adds the peak GPU memory to the output.
Prints one JSON line: segments, seconds in the loop, video duration.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from pytorchvideo.data.encoded_video import EncodedVideo
from torchvision.transforms import Compose, Lambda
from torchvision.transforms._transforms_video import CenterCropVideo, NormalizeVideo

from app.analysis.catalog import load_catalog
from app.analysis.loader import build_model


class UniformTemporalSubsample(torch.nn.Module):
    """pytorchvideo.transforms.UniformTemporalSubsample (functional.uniform_temporal_subsample)."""

    def __init__(self, num_samples: int) -> None:
        super().__init__()
        self.num_samples = num_samples

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[-3]
        indices = torch.linspace(0, t - 1, self.num_samples).clamp(0, t - 1).long()
        return torch.index_select(x, -3, indices)


class ShortSideScale(torch.nn.Module):
    """pytorchvideo.transforms.ShortSideScale (functional.short_side_scale, bilinear)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert len(x.shape) == 4
        assert x.dtype == torch.float32
        _, _, h, w = x.shape
        if w < h:
            new_h, new_w = math.floor((float(h) / w) * self.size), self.size
        else:
            new_h, new_w = self.size, math.floor((float(w) / h) * self.size)
        return torch.nn.functional.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)


class ApplyTransformToKey:
    """pytorchvideo.transforms.ApplyTransformToKey."""

    def __init__(self, key: str, transform: Compose) -> None:
        self._key, self._transform = key, transform

    def __call__(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x[self._key] = self._transform(x[self._key])
        return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--model", default="x3d_s")
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--segment-seconds", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (the tutorial's `device`)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    spec = load_catalog(args.models_dir).get(args.model)
    model = build_model(spec)  # torch.hub.load(..., pretrained=True) without the download
    model.load_state_dict(
        torch.load(args.models_dir / spec.weights, map_location="cpu", weights_only=True)["model_state"]
    )
    device = torch.device(args.device)
    model = model.eval().to(device)

    transform = ApplyTransformToKey(
        key="video",
        transform=Compose(
            [
                UniformTemporalSubsample(spec.frames),
                Lambda(lambda x: x / 255.0),
                NormalizeVideo(list(spec.mean), list(spec.std)),
                ShortSideScale(size=spec.short_side),
                CenterCropVideo(crop_size=(spec.crop, spec.crop)),
            ]
        ),
    )
    started = time.perf_counter()
    video = EncodedVideo.from_path(str(args.video))
    duration = float(video.duration)
    segments = 0
    start = 0.0
    while start < duration:
        clip = video.get_clip(start_sec=start, end_sec=min(start + args.segment_seconds, duration))
        clip = transform(clip)
        inputs = clip["video"].to(device)  # the tutorial moves the clip after the transform
        if spec.alpha:  # PackPathway, as the SlowFast tutorial writes it
            fast = inputs
            slow = torch.index_select(
                inputs, 1, torch.linspace(0, inputs.shape[1] - 1, inputs.shape[1] // spec.alpha).long()
            )
            batch: torch.Tensor | list[torch.Tensor] = [slow[None, ...], fast[None, ...]]
        else:
            batch = inputs[None, ...]
        with torch.no_grad():
            preds = model(batch)
        preds = torch.nn.Softmax(dim=1)(preds)
        preds.topk(k=5)
        segments += 1
        start += args.segment_seconds
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - started
    out = {"segments": segments, "loop_seconds": elapsed, "duration": duration}
    if device.type == "cuda":
        out["peak_gpu_bytes"] = torch.cuda.max_memory_allocated(device)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
