"""Explanations by model family: the method picked from the builder, SlowFast's fused HiResCAM,
MViT's HiResCAM on the patch tokens (and its attention rollout through pooled token grids), and
a model no method fits."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pytorchvideo.models.slowfast import create_slowfast
from pytorchvideo.models.vision_transformers import create_multiscale_vision_transformers
from torch import nn

from app.analysis.catalog import load_catalog
from app.analysis.engine import Analyzer
from app.analysis.explain_methods import Family, family_of, method_for
from app.analysis.explain_rollout import METHOD as PATCH_TOKENS
from app.analysis.explain_rollout import (
    attention_recorded,
    patch_token_cam,
    pool_back,
    pooling_axes,
    rollout,
)
from app.analysis.explain_slowfast import METHOD as SLOWFAST
from app.analysis.explain_slowfast import fuse, slowfast_cam
from app.analysis.loader import build_model
from app.options import JobOptions
from app.settings import Settings
from tests.known_answer.explain_scenes import spearman

DATA = Path(__file__).resolve().parent.parent / "data"


def test_every_builtin_model_gets_its_familys_method(tmp_path: Path) -> None:
    catalog = load_catalog(tmp_path)
    specs = [catalog.get(name) for name in catalog.names()]
    names = {spec.name: spec for spec in specs if spec.task in ("classification", "multilabel")}
    assert names
    for name, spec in names.items():
        method = method_for(spec.builder)
        assert not isinstance(method, str), name
        want = PATCH_TOKENS if name.startswith("mvit") else "hirescam"
        assert method.name == (SLOWFAST if name.startswith("slowfast") else want), name


@pytest.mark.parametrize(
    ("builder", "family"),
    [
        ("pytorchvideo.models.x3d.create_x3d", Family.CNN),
        ("pytorchvideo.models.hub.slowfast_r50", Family.SLOWFAST),
        ("pytorchvideo.models.slowfast.create_slowfast", Family.SLOWFAST),
        ("pytorchvideo.models.vision_transformers.create_multiscale_vision_transformers", Family.MVIT),
        ("pytorchvideo.models.hub.mvit_base_16x4", Family.MVIT),
        ("pytorchvideo.models.hub.csn_r101", Family.CNN),
        ("pytorchvideo.models.masked_multistream.create_masked_multistream", None),
    ],
)
def test_family_comes_from_the_builder(builder: str, family: Family | None) -> None:
    assert family_of(builder) == family
    if family is None:
        note = method_for(builder)
        assert isinstance(note, str) and builder in note and "not explained" in note


def test_pooling_axes_average_each_window_like_avgpool() -> None:
    """The per-axis matrices reproduce AvgPool3d (padding not counted), and ``pool_back``
    applies the transposed pooling, class token included, without the dense matrix."""
    torch.manual_seed(0)
    pool = nn.AvgPool3d((3, 3, 3), (1, 2, 2), (1, 1, 1), count_include_pad=False)
    grid = torch.rand(1, 1, 4, 9, 7)
    pooled = pool(grid)[0, 0]
    axes = pooling_axes(pool, (4, 9, 7), tuple(pooled.shape))  # type: ignore[arg-type]
    dense = torch.kron(torch.kron(axes[0], axes[1]), axes[2])
    assert torch.allclose(dense @ grid.flatten(), pooled.flatten(), atol=1e-6)
    row = torch.rand(1 + pooled.numel())
    back = pool_back(row, axes, cls=True)
    assert back[0] == row[0] and torch.allclose(back[1:], row[1:] @ dense, atol=1e-6)
    assert float(back.sum()) == pytest.approx(float(row.sum()), rel=1e-5)  # rows of a pooling sum to 1


def tiny_mvit(pool_first: bool = False) -> nn.Module:
    torch.manual_seed(3)
    return create_multiscale_vision_transformers(
        spatial_size=32,
        temporal_size=4,
        depth=3,
        patch_embed_dim=16,
        num_heads=2,
        embed_dim_mul=((1, 2.0),),
        atten_head_mul=((1, 2.0),),
        pool_q_stride_size=((1, 1, 2, 2),),
        pool_kv_stride_size=((0, 1, 2, 2), (1, 1, 2, 2), (2, 1, 1, 1)),
        pool_first=pool_first,
        head_dropout_rate=0.0,
        head_num_classes=5,
    ).eval()


@pytest.mark.parametrize("pool_first", [False, True])
def test_recorded_attention_leaves_the_scores_as_they_were(pool_first: bool) -> None:
    net = tiny_mvit(pool_first)
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        plain = net(x)
        with attention_recorded(net) as seen:
            recorded = net(x)
    assert torch.allclose(plain, recorded, atol=1e-5)
    # patches 2x8x8 (+ the class token); block 1 pools queries to 2x4x4, keys 2x4x4 throughout
    assert [(a.thw_in, a.thw_q, a.thw_kv) for a in seen] == [
        ((2, 8, 8), (2, 8, 8), (2, 4, 4)),
        ((2, 8, 8), (2, 4, 4), (2, 4, 4)),
        ((2, 4, 4), (2, 4, 4), (2, 4, 4)),
    ]
    assert [tuple(a.attn.shape) for a in seen] == [(1, 2, 129, 33), (1, 4, 33, 33), (1, 4, 33, 33)]
    assert all(torch.allclose(a.attn.sum(-1), torch.ones(1)) for a in seen)
    assert not net.blocks[0].attn._forward_hooks, "hooks are removed"


def test_patch_token_map_is_hirescam_on_the_tokens_and_touches_nothing() -> None:
    net = tiny_mvit()
    before = copy.deepcopy(net.state_dict())
    view = torch.randn(3, 4, 32, 32)
    with torch.inference_mode():
        cams = patch_token_cam(net, view, [1, 3])
    assert all(p.grad is None for p in net.parameters())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert not net.patch_embed._forward_hooks, "hooks are removed"  # type: ignore[union-attr]
    kept: list[torch.Tensor] = []
    handle = net.patch_embed.register_forward_hook(lambda _, __, out: kept.append(out))  # type: ignore[union-attr]
    scores = net(view.unsqueeze(0))  # the whole model's graph, for reference
    handle.remove()
    for cam, class_id in zip(cams, [1, 3], strict=True):
        (grad,) = torch.autograd.grad(scores[0, class_id], kept[0], retain_graph=True)
        want = torch.relu((grad[0] * kept[0][0].detach()).sum(dim=-1)).reshape(2, 8, 8)
        assert torch.allclose(cam.cam, want / want.max(), atol=1e-5)
        assert len(cam.frame_weights) == 4 and max(cam.frame_weights) == pytest.approx(1.0)
    assert not torch.equal(cams[0].cam, cams[1].cam), "class-specific: another label, another map"


@pytest.mark.parametrize("weighted", [True, False])
def test_rollout_is_a_map_over_the_patch_grid_and_touches_nothing(weighted: bool) -> None:
    net = tiny_mvit()
    before = copy.deepcopy(net.state_dict())
    view = torch.randn(3, 4, 32, 32)
    with torch.inference_mode():
        cams = rollout(net, view, [1, 3], weighted=weighted)
    for cam in cams:
        assert cam.cam.shape == (2, 8, 8) and float(cam.cam.min()) >= 0 and float(cam.cam.max()) == 1.0
        assert len(cam.frame_weights) == 4 and max(cam.frame_weights) == pytest.approx(1.0)
    if weighted:  # class-specific: another label, another map
        assert not torch.equal(cams[0].cam, cams[1].cam)
    else:
        assert torch.equal(cams[0].cam, cams[1].cam)
    assert all(p.grad is None for p in net.parameters())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_content_free_attention_gives_a_flat_map_not_the_pooling_lattice() -> None:
    """With queries and keys zeroed every attention row is uniform: what is left of the rollout
    is the poolings' overlap pattern, which dividing by the coverage removes."""
    net = tiny_mvit()
    for block in net.blocks:  # type: ignore[union-attr]
        for layer in (block.attn.q, block.attn.k):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
    cam = rollout(net, torch.randn(3, 4, 32, 32), [0], weighted=False)[0].cam
    assert torch.allclose(cam, torch.ones_like(cam), atol=1e-5)


def tiny_slowfast(classes: int = 5) -> nn.Module:
    """SlowFast R50's layout with 16 + 2 stem channels, for 64-pixel clips of 8 fast frames."""
    torch.manual_seed(5)
    net = create_slowfast(
        model_num_class=classes,
        dropout_rate=0.0,
        stem_dim_outs=(16, 2),
        head_pool_kernel_sizes=((2, 2, 2), (8, 2, 2)),
    )
    for m in net.modules():  # random running statistics, so eval-mode BatchNorm is not the identity
        if isinstance(m, nn.BatchNorm3d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def slowfast_view(seed: int) -> list[torch.Tensor]:
    torch.manual_seed(seed)
    fast = torch.randn(3, 8, 64, 64)
    return [fast[:, torch.linspace(0, 7, 2).long()].clone(), fast]


def test_fusion_keeps_each_pathways_mass() -> None:
    slow, fast = torch.rand(2, 4, 4), torch.rand(8, 4, 4)
    fused = fuse([slow, fast])
    assert fused.shape == (8, 4, 4)
    assert float(fused.sum()) == pytest.approx(float(slow.sum() + fast.sum()), rel=1e-5)
    assert torch.allclose(fuse([torch.zeros(2, 4, 4), fast]), fast)


def test_slowfast_map_fuses_both_pathways_and_touches_nothing() -> None:
    net = tiny_slowfast()
    before = copy.deepcopy(net.state_dict())
    view = slowfast_view(0)
    given = list(view)
    with torch.inference_mode():
        cams = slowfast_cam(net, view, [0, 4])
    assert all(a is b for a, b in zip(view, given, strict=True)), "the caller's list is not rewritten"
    for cam in cams:
        assert cam.cam.shape == (8, 8, 8) and float(cam.cam.min()) >= 0 and float(cam.cam.max()) == 1.0
        assert len(cam.frame_weights) == 8 and max(cam.frame_weights) == pytest.approx(1.0)
    assert all(p.grad is None for p in net.parameters())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def quadrant_clips(count: int, gen: torch.Generator) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Noise with a bright 10-pixel square drifting through one quadrant of the frame; the
    label is the quadrant (0 top left, 1 top right, 2 bottom left, 3 bottom right)."""
    fast = torch.randn(count, 3, 8, 64, 64, generator=gen) * 0.5
    labels = torch.randint(0, 4, (count,), generator=gen)
    for b in range(count):
        y0, x0 = (int(n) for n in torch.randint(2, 14, (2,), generator=gen))
        y0, x0 = y0 + 32 * (int(labels[b]) // 2), x0 + 32 * (int(labels[b]) % 2)
        dy, dx = (int(n) for n in torch.randint(-1, 2, (2,), generator=gen))
        for t in range(8):
            fast[b, :, t, y0 + dy * t : y0 + dy * t + 10, x0 + dx * t : x0 + dx * t + 10] += 2.0
    return [fast[:, :, torch.linspace(0, 7, 2).long()].clone(), fast], labels


@pytest.fixture(scope="module")
def quadrant_slowfast() -> nn.Module:
    """The tiny SlowFast trained (60 steps, about a minute on one core) to name the quadrant."""
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    net = tiny_slowfast(classes=4).train()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(60):
        x, y = quadrant_clips(8, gen)
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def test_trained_slowfast_map_points_at_the_square_and_depends_on_the_weights(
    quadrant_slowfast: nn.Module,
) -> None:
    """Known answer: the fused map's peak lies in the square's quadrant. Cascading
    randomisation (Adebayo et al., 2018) from the head down: every step changes the map (mean
    Spearman < 0.5). On an untrained SlowFast the head step leaves it at 0.99: with every
    weight random there is no trained head to lose, so the check needs a trained model."""
    x, labels = quadrant_clips(16, torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (quadrant_slowfast(list(x)).argmax(1) == labels).float().mean() >= 0.9
    views = [([x[0][b], x[1][b]], int(labels[b])) for b in range(16)]
    maps = [slowfast_cam(quadrant_slowfast, view, [label])[0].cam for view, label in views]
    hits = 0
    for cam, (_, label) in zip(maps, views, strict=True):
        _, i, j = np.unravel_index(int(cam.argmax()), cam.shape)  # an 8x8 grid (res3)
        hits += int(2 * (i // 4) + j // 4 == label)
    assert hits >= 14, f"the fused map's peak was in the square's quadrant in {hits} of 16 clips"
    randomised = copy.deepcopy(quadrant_slowfast)
    torch.manual_seed(0)
    correlations = []
    for block in reversed(list(randomised.blocks)):  # type: ignore[arg-type]
        for p in block.parameters():
            torch.nn.init.normal_(p, std=0.1)
        got = [slowfast_cam(randomised, view, [label])[0].cam for view, label in views[:4]]
        correlations.append(float(np.mean([spearman(a, b) for a, b in zip(maps[:4], got, strict=True)])))
    print(
        f"quadrant hits {hits}/16; mean Spearman per cascade step (head first):",
        [round(c, 2) for c in correlations],
    )
    assert all(c < 0.5 for c in correlations), correlations


def _zoo_model(tmp_path: Path, name: str) -> Path:
    """A models dir holding a random-init checkpoint of zoo entry ``name``, in the zoo's layout
    (``model_state``, or the bare state dict where the zoo ships one)."""
    models = tmp_path / "models"
    models.mkdir()
    spec = load_catalog(models).get(name)
    torch.manual_seed(0)
    state = build_model(spec).state_dict()
    torch.save(state if spec.checkpoint_key is None else {spec.checkpoint_key: state}, models / spec.weights)
    return models


@pytest.mark.slow
def test_slowfast_r50_explains_a_rotated_phone_video(tmp_path: Path) -> None:
    """slowfast_r50 (random weights, zoo checkpoint layout) on decord_video_90.mov, coded
    568x320 and displayed portrait: one fused map per segment, on the displayed frame."""
    models = _zoo_model(tmp_path, "slowfast_r50")
    analyzer = Analyzer(models_dir=models, allowed_formats=Settings().allowed_format_list)
    result = analyzer.analyze(
        DATA / "decord_video_90.mov", "slowfast_r50", JobOptions(explain=True)
    ).to_dict()
    assert result["video"]["rotation"] in (90, 270)
    explanations = result["explanations"]
    assert len(explanations) == len(result["segments"]) >= 1
    assert "explain_note" not in result["provenance"]
    for item, segment in zip(explanations, result["segments"], strict=True):
        assert item["method"] == SLOWFAST and item["class_id"] == segment["labels"][0]["class_id"]
        heat = item["heatmap"]
        data = np.asarray(heat["data"])
        # res5 at a 256 crop: 8x8 cells, the fast pathway's 32 steps; portrait 320x568 -> 8 x 14
        assert data.shape == (heat["t"], heat["h"], heat["w"]) == (32, 14, 8)
        assert data.min() >= 0 and data.max() == 1.0
        assert len(heat["times"]) == 32 and heat["times"] == sorted(heat["times"])
        weights = [f["weight"] for f in item["frames"]]
        assert len(weights) == 32 and max(weights) == 1.0 and min(weights) >= 0


def test_a_model_its_method_cannot_read_is_scored_with_a_note(tmp_path: Path) -> None:
    """efficient_x3d_xs is an X3D but not a pytorchvideo ``Net`` of blocks: the job is scored as
    usual, no explanations, and the provenance says why."""
    from tests.media import write_video

    models = _zoo_model(tmp_path, "efficient_x3d_xs")
    video = write_video(tmp_path / "v.mp4", seconds=2, fps=30, width=96, height=64)
    analyzer = Analyzer(models_dir=models, allowed_formats=Settings().allowed_format_list)
    result = analyzer.analyze(video, "efficient_x3d_xs", JobOptions(explain=True)).to_dict()
    assert result["segments"] and all(s["labels"] for s in result["segments"])
    assert result["explanations"] == []
    note = result["provenance"]["explain_note"]
    assert "hirescam cannot explain efficient_x3d_xs" in note and "not explained" in note
