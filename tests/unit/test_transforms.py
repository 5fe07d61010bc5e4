"""Clip tensors equal a reference written straight from PyTorchVideo's transform definitions."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from app.analysis.catalog import load_catalog
from app.analysis.transforms import ClipTransform, pack_pathway

MEAN, STD = (0.40, 0.45, 0.50), (0.20, 0.225, 0.25)


def reference_views(
    video: np.ndarray,
    indices: list[int],
    *,
    short_side: int,
    crop: int,
    crops: int,
    alpha: int | None = None,
    bgr: bool = False,
) -> list[np.ndarray | list[np.ndarray]]:
    """subsample -> /255 -> normalize -> short_side_scale -> centre crop (CenterCropVideo) or
    3 uniform crops -> (BGR) -> PackPathway."""
    x = torch.from_numpy(video).permute(3, 0, 1, 2).float()  # (C, N, H, W), as EncodedVideo returns
    x = x[:, indices] / 255.0
    mean, std = torch.tensor(MEAN).view(3, 1, 1, 1), torch.tensor(STD).view(3, 1, 1, 1)
    x = (x - mean) / std
    _, _, h, w = x.shape
    new_h, new_w = (
        (math.floor(h / w * short_side), short_side)
        if w < h
        else (short_side, math.floor(w / h * short_side))
    )
    x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)
    views: list[torch.Tensor | list[torch.Tensor]] = []
    for idx in [1] if crops == 1 else [0, 1, 2]:
        height, width = x.shape[2], x.shape[3]
        y0 = math.ceil((height - crop) / 2)
        x0 = math.ceil((width - crop) / 2)
        if crops == 1:  # torchvision CenterCropVideo, as the Torch Hub tutorial
            y0, x0 = round((height - crop) / 2.0), round((width - crop) / 2.0)
        elif height > width:
            y0 = 0 if idx == 0 else height - crop if idx == 2 else y0
        else:
            x0 = 0 if idx == 0 else width - crop if idx == 2 else x0
        view = x[:, :, y0 : y0 + crop, x0 : x0 + crop]
        if bgr:
            view = view[[2, 1, 0]]
        if alpha:
            t = view.shape[1]
            view = [torch.index_select(view, 1, torch.linspace(0, t - 1, t // alpha).long()), view]
        views.append(view)
    return views


def engine_views(
    video: np.ndarray, indices: list[int], transform: ClipTransform
) -> list[np.ndarray | list[np.ndarray]]:
    prepared = {i: transform.prepare_frame(np.ascontiguousarray(video[i])) for i in set(indices)}
    return transform.views([prepared[i] for i in indices])


def assert_views_close(got: list, want: list) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        pairs = zip(g, w, strict=True) if isinstance(w, list) else [(g, w)]
        for a, b in pairs:
            assert a.shape == b.shape
            assert float(np.abs(np.asarray(a) - np.asarray(b)).max()) <= 1e-4


@pytest.mark.parametrize("size", [(97, 71), (71, 97), (64, 64), (90, 160), (241, 426)], ids=str)
@pytest.mark.parametrize("crops", [1, 3])
@pytest.mark.parametrize(("short_side", "crop"), [(182, 160), (112, 112), (64, 56)])
def test_clip_matches_reference(size: tuple[int, int], crops: int, short_side: int, crop: int) -> None:
    rng = np.random.default_rng(sum(size) + crops + short_side)
    video = rng.integers(0, 256, size=(20, *size, 3), dtype=np.uint8)
    indices = [0, 2, 4, 4, 7, 11, 15, 19]
    transform = ClipTransform(MEAN, STD, short_side=short_side, crop=crop, crops=crops)
    got = engine_views(video, indices, transform)
    assert_views_close(got, reference_views(video, indices, short_side=short_side, crop=crop, crops=crops))
    assert all(v.shape == (3, len(indices), crop, crop) for v in got if isinstance(v, torch.Tensor))


def test_slowfast_and_bgr_match_reference() -> None:
    rng = np.random.default_rng(7)
    video = rng.integers(0, 256, size=(40, 72, 96, 3), dtype=np.uint8)
    indices = list(range(0, 40))[:32]
    transform = ClipTransform(MEAN, STD, short_side=64, crop=64, crops=3, alpha=4, bgr=True)
    got = engine_views(video, indices, transform)
    want = reference_views(video, indices, short_side=64, crop=64, crops=3, alpha=4, bgr=True)
    assert_views_close(got, want)
    slow, fast = got[0]
    assert slow.shape == (3, 8, 64, 64) and fast.shape == (3, 32, 64, 64)


def test_pack_pathway_uses_linspace_indices() -> None:
    fast = np.broadcast_to(np.arange(32, dtype=np.float32).reshape(1, 32, 1, 1), (3, 32, 2, 2))
    slow, same = pack_pathway(fast, 4)
    assert slow[0, :, 0, 0].tolist() == [0, 4, 8, 13, 17, 22, 26, 31]
    assert same is fast
    slow8, _ = pack_pathway(fast, 8)
    assert slow8[0, :, 0, 0].tolist() == torch.linspace(0, 31, 4).long().tolist()


def test_for_spec_uses_the_catalog_geometry(tmp_path: Path) -> None:
    catalog = load_catalog(tmp_path)
    one = ClipTransform.for_spec(catalog.get("x3d_s"), crops=1)
    three = ClipTransform.for_spec(catalog.get("x3d_s"), crops=3)
    assert (one.short_side, one.crop, three.short_side, three.crop) == (182, 182, 182, 182)
    sf = ClipTransform.for_spec(catalog.get("slowfast_r50"))
    assert sf.alpha == 4 and not sf.bgr
    frame = np.zeros((360, 640, 3), dtype=np.uint8)
    views = one.views([one.prepare_frame(frame)] * 13)
    assert len(views) == 1 and views[0].shape == (3, 13, 182, 182)
    assert three.prepare_frame(frame).shape == (3, 182, 323)


def test_resolution_change_inside_a_clip_is_resized() -> None:
    transform = ClipTransform(MEAN, STD, short_side=64, crop=64)
    a = transform.prepare_frame(np.zeros((72, 128, 3), dtype=np.uint8))
    b = transform.prepare_frame(np.zeros((80, 128, 3), dtype=np.uint8))
    assert a.shape != b.shape
    assert transform.views([a, b, a])[0].shape == (3, 3, 64, 64)
