"""The decode child's numpy transform equals the torch one (and pytorchvideo's definitions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from app.analysis.catalog import load_catalog
from app.analysis.prep import FramePrep, bilinear
from app.analysis.transforms import ClipTransform
from tests.unit.test_transforms import MEAN, STD, reference_views

TOLERANCE = 1e-4
"""Normalised units; measured worst case ~4e-5 (float rounding of the bilinear blend)."""


def numpy_views(frames: list[np.ndarray], prep: FramePrep) -> np.ndarray:
    out = np.full(prep.clip_shape(len(frames)), np.nan, dtype=np.float32)
    prep.write_views([prep.prepare_frame(f) for f in frames], out)
    return out


@pytest.mark.parametrize("size", [(720, 1280), (97, 71), (71, 97), (64, 64), (241, 426), (182, 323)], ids=str)
@pytest.mark.parametrize("crops", [1, 3])
@pytest.mark.parametrize("bgr", [False, True])
def test_matches_the_torch_transform(size: tuple[int, int], crops: int, bgr: bool) -> None:
    rng = np.random.default_rng(sum(size) + crops)
    frames = [rng.integers(0, 256, size=(*size, 3), dtype=np.uint8) for _ in range(4)]
    torch_t = ClipTransform(MEAN, STD, short_side=182, crop=160, crops=crops, bgr=bgr)
    prep = FramePrep(MEAN, STD, short_side=182, crop=160, crops=crops, bgr=bgr)
    want = torch_t.views([torch_t.prepare_frame(f) for f in frames])
    got = numpy_views(frames, prep)
    assert got.shape == (len(want), 3, 4, 160, 160)
    for g, w in zip(got, want, strict=True):
        assert isinstance(w, np.ndarray)
        assert float(np.abs(g - w).max()) <= TOLERANCE


def test_matches_pytorchvideo_definitions_with_a_resolution_change() -> None:
    rng = np.random.default_rng(3)
    video = rng.integers(0, 256, size=(8, 90, 160, 3), dtype=np.uint8)
    prep = FramePrep(MEAN, STD, short_side=64, crop=56, crops=3)
    got = numpy_views([video[i] for i in range(8)], prep)
    want = reference_views(video, list(range(8)), short_side=64, crop=56, crops=3)
    for g, w in zip(got, want, strict=True):
        assert isinstance(w, torch.Tensor)
        assert (torch.from_numpy(g) - w).abs().max().item() <= TOLERANCE
    # A frame of another size is rescaled to the first one's prepared size, as the torch path does.
    bigger = rng.integers(0, 256, size=(120, 200, 3), dtype=np.uint8)
    torch_t = ClipTransform(MEAN, STD, short_side=64, crop=56, crops=1)
    frames = [video[0], bigger, video[1]]
    want1 = torch_t.views([torch_t.prepare_frame(f) for f in frames])[0]
    got1 = numpy_views(frames, FramePrep(MEAN, STD, short_side=64, crop=56))[0]
    assert isinstance(want1, np.ndarray)
    assert float(np.abs(got1 - want1).max()) <= TOLERANCE


@pytest.mark.parametrize(("src", "dst"), [((10, 10), (10, 10)), ((5, 7), (13, 17)), ((1, 9), (4, 3))])
def test_bilinear_up_down_and_identity(src: tuple[int, int], dst: tuple[int, int]) -> None:
    image = np.random.default_rng(0).random((*src, 2), dtype=np.float32) * 255
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    want = torch.nn.functional.interpolate(x, size=dst, mode="bilinear", align_corners=False)
    got = bilinear(image, *dst)
    assert np.abs(got - want[0].permute(1, 2, 0).numpy()).max() <= 1e-3


def test_for_spec_matches_clip_transform(tmp_path: Path) -> None:
    catalog = load_catalog(tmp_path)
    for name, crops in [("x3d_s", 1), ("x3d_s", 3), ("slowfast_r50", 1), ("mvit_base_16x4", 3)]:
        spec = catalog.get(name)
        t, p = ClipTransform.for_spec(spec, crops), FramePrep.for_spec(spec, crops)
        assert (t.mean, t.std, t.short_side, t.crop, t.crops, t.bgr) == (
            p.mean,
            p.std,
            p.short_side,
            p.crop,
            p.crops,
            p.bgr,
        )
