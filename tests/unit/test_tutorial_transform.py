"""One crop is the PyTorchVideo Torch Hub tutorial's transform: on real files, with the very
frames ``EncodedVideo.get_clip`` decodes, our clip tensors (the torch ``ClipTransform`` and
the decode child's numpy ``FramePrep``) equal the tutorial's within 1e-5.

The tutorial (X3D and SlowFast pages of pytorch.org/hub)::

    ApplyTransformToKey("video", Compose([UniformTemporalSubsample(T), Lambda(x / 255),
        NormalizeVideo(mean, std), ShortSideScale(size), CenterCropVideo(crop), PackPathway()]))

``pytorchvideo.transforms`` does not import with this torchvision (it asks for the renamed
``torchvision.transforms.functional_tensor``), so its pieces are written out below from
``pytorchvideo/transforms/functional.py``; torchvision's own ``NormalizeVideo`` and
``CenterCropVideo`` are used as the tutorial imports them. Where the old module name can be
aliased, a test checks the written-out pieces against pytorchvideo's own.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

from app.analysis.catalog import load_catalog
from app.analysis.clip_views import array_views
from app.analysis.decode import decode_clips
from app.analysis.plan import plan_for_scan
from app.analysis.prep import FramePrep
from app.analysis.scan import scan_video
from app.analysis.spec import ModelSpec
from app.analysis.transforms import ClipTransform
from app.options import JobOptions
from app.settings import Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # "_transforms_video is deprecated"
    from torchvision.transforms import Compose, Lambda
    from torchvision.transforms._transforms_video import CenterCropVideo, NormalizeVideo

ALLOWED = Settings().allowed_format_list
DATA = Path(__file__).resolve().parent.parent / "data"
TOLERANCE = 1e-5
REAL_FILES = ["decord_flipping_a_pancake.mkv", "mmaction2_demo.mp4", "mmaction2_test.avi"]
"""426x240 H.264 MKV (1/1000 time base), 340x256 H.264 MP4, 320x240 MPEG-4 ASP AVI: 182 and 256
short sides give long sides 323 and 341, whose centre crops fall on a half pixel."""
TUTORIAL_GEOMETRY = {"x3d_s": (182, 182), "slowfast_r50": (256, 256)}
"""(short side, centre crop) of the tutorial's ``model_transform_params``."""


def uniform_temporal_subsample(x: torch.Tensor, num_samples: int, temporal_dim: int = -3) -> torch.Tensor:
    """pytorchvideo.transforms.functional.uniform_temporal_subsample."""
    t = x.shape[temporal_dim]
    indices = torch.clamp(torch.linspace(0, t - 1, num_samples), 0, t - 1).long()
    return torch.index_select(x, temporal_dim, indices)


def short_side_scale(x: torch.Tensor, size: int) -> torch.Tensor:
    """pytorchvideo.transforms.functional.short_side_scale (backend "pytorch", bilinear)."""
    _, _, h, w = x.shape
    if w < h:
        new_h, new_w = math.floor((float(h) / w) * size), size
    else:
        new_h, new_w = size, math.floor((float(w) / h) * size)
    return torch.nn.functional.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)


def pack_pathway(frames: torch.Tensor, alpha: int) -> list[torch.Tensor]:
    """The SlowFast tutorial's PackPathway."""
    index = torch.linspace(0, frames.shape[1] - 1, frames.shape[1] // alpha).long()
    return [torch.index_select(frames, 1, index), frames]


def tutorial_transform(spec: ModelSpec, short_side: int, crop: int) -> Callable[[dict], dict]:
    """ApplyTransformToKey("video", Compose([...])) with the model's T, mean, std and alpha."""
    steps: list[Callable[[torch.Tensor], object]] = [
        Lambda(lambda x: uniform_temporal_subsample(x, spec.frames)),
        Lambda(lambda x: x / 255.0),
        NormalizeVideo(list(spec.mean), list(spec.std)),
        Lambda(lambda x: short_side_scale(x, short_side)),
        CenterCropVideo(crop_size=(crop, crop)),
    ]
    if spec.alpha:
        alpha = spec.alpha
        steps.append(Lambda(lambda x: pack_pathway(x, alpha)))
    compose = Compose(steps)

    def apply(sample: dict) -> dict:
        return {**sample, "video": compose(sample["video"])}

    return apply


def tutorial_spec(name: str, tmp_path: Path) -> ModelSpec:
    """The catalog's spec, its one-crop geometry set to the tutorial's where the catalog differs."""
    spec = load_catalog(tmp_path).get(name)
    short_side, crop = TUTORIAL_GEOMETRY[name]
    if (spec.short_side, spec.crop) != (short_side, crop):
        spec = replace(spec, short_side=short_side, crop=crop)
    return spec


def as_paths(view: Any) -> list[Any]:
    return view if isinstance(view, list) else [view]


def largest_difference(got: list[Any], want: list[Any]) -> float:
    assert [tuple(g.shape) for g in got] == [tuple(w.shape) for w in want]
    return max(float(np.abs(np.asarray(g) - np.asarray(w)).max()) for g, w in zip(got, want, strict=True))


@pytest.mark.parametrize("name", REAL_FILES)
@pytest.mark.parametrize("model", ["x3d_s", "slowfast_r50"])
def test_real_clips_equal_the_tutorial(tmp_path: Path, name: str, model: str) -> None:
    from pytorchvideo.data.encoded_video import EncodedVideo

    spec = tutorial_spec(model, tmp_path)
    path = DATA / name
    scan = scan_video(path, ALLOWED)
    plan = plan_for_scan(spec, JobOptions(), scan)
    clips = plan.clips[:3]
    ours = {c.plan: c.frames for c in decode_clips(path, ALLOWED, scan, plan, lambda rgb: rgb)}
    reference = EncodedVideo.from_path(str(path), decode_audio=False, decoder="pyav")
    transform = tutorial_transform(spec, spec.short_side, spec.crop)
    clip_transform, frame_prep = ClipTransform.for_spec(spec, 1), FramePrep.for_spec(spec, 1)
    worst = 0.0
    for clip in clips:
        sample = reference.get_clip(clip.window_start, clip.window_end)
        frames = [np.ascontiguousarray(f) for f in ours[clip]]
        if scan.packet_times:
            # Identical decoded frames: the T frames the tutorial keeps are the ones our decoder gives.
            kept = uniform_temporal_subsample(sample["video"], spec.frames)
            assert np.array_equal(np.stack(frames), kept.permute(1, 2, 3, 0).numpy().astype(np.uint8))
        else:
            # AVI: PyTorchVideo orders frames by pts, which packed B-frames scramble (more so after
            # its seek), so both transforms get our decoder's T frames (subsampling keeps all T).
            sample = {"video": torch.from_numpy(np.stack(frames)).permute(3, 0, 1, 2).float()}
        want = as_paths(transform(sample)["video"])
        got_torch = as_paths(clip_transform.views([clip_transform.prepare_frame(f) for f in frames])[0])
        out = np.empty(frame_prep.clip_shape(spec.frames), dtype=np.float32)
        frame_prep.write_views([frame_prep.prepare_frame(f) for f in frames], out)
        got_numpy = as_paths(array_views(out, spec.alpha)[0])  # the sandboxed decoder's path
        worst = max(worst, largest_difference(got_torch, want), largest_difference(got_numpy, want))
    assert len(clips) >= 2
    assert worst <= TOLERANCE, f"largest difference {worst:.2e}"


def _pytorchvideo_transforms() -> ModuleType | None:
    """``pytorchvideo.transforms`` with the old torchvision module name aliased, or None."""
    try:
        import torchvision.transforms._functional_tensor as renamed

        sys.modules.setdefault("torchvision.transforms.functional_tensor", renamed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pytorchvideo.transforms as transforms
    except ImportError:
        return None
    return transforms


def test_written_out_pieces_equal_pytorchvideo_own() -> None:
    transforms = _pytorchvideo_transforms()
    if transforms is None:
        pytest.skip("pytorchvideo.transforms does not import here, even with the old module name")
    video = torch.from_numpy(np.random.default_rng(5).integers(0, 256, (3, 37, 61, 97)).astype(np.float32))
    for frames in (1, 4, 13, 32, 64):
        assert torch.equal(
            transforms.UniformTemporalSubsample(frames)(video), uniform_temporal_subsample(video, frames)
        )
    for size in (40, 61, 182):
        assert torch.equal(transforms.ShortSideScale(size)(video), short_side_scale(video, size))
        assert torch.equal(
            transforms.ShortSideScale(size)(video.transpose(2, 3)),
            short_side_scale(video.transpose(2, 3), size),
        )
