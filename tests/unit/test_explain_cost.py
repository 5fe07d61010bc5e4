"""What makes ``explain`` cheap must not change the maps: the graph only above the picked block
(``explain.head_graph``) and its faster convolutions give the maps of a graph through the whole
trunk; the hooks and the convolution mode act for the explaining thread only; the explainer's
thread (``explain_task``) gives the maps the inline explainer gives, its errors fail the job as
before, and it is gone once the job ended, however it ended."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from pytorchvideo.models.slowfast import create_slowfast
from torch import nn

from app.analysis import explain_task
from app.analysis.catalog import load_catalog
from app.analysis.engine import Analyzer
from app.analysis.explain import METHOD as HIRESCAM
from app.analysis.explain import Cam, feature_blocks, grad_cam, head_graph, normalised
from app.analysis.explain import _pick as pick_cnn
from app.analysis.explain_methods import Method
from app.analysis.explain_slowfast import _pick as pick_slowfast
from app.analysis.explain_slowfast import fuse, slowfast_cam
from app.analysis.loader import ModelLoader
from app.options import JobOptions
from tests.conftest import REPO
from tests.known_answer.explain_scenes import demo_views
from tests.media import write_video

MODELS = REPO / "models"


@pytest.fixture(scope="module")
def demo() -> tuple[nn.Module, list[tuple[torch.Tensor, int]]]:
    """The demo X3D (trained) and four clips as the pipeline prepares them, with their top class."""
    spec = load_catalog(MODELS).get("demo_motion")
    module = ModelLoader(MODELS, device="cpu").load(spec).module
    return module, demo_views(spec, module)


def whole_trunk_cams(module: nn.Module, x: Any, pick: Any, class_ids: list[int]) -> list[list[torch.Tensor]]:
    """HiResCAM the plain way (the explainer before ``head_graph``): the input requires grad, so
    the whole trunk is in the graph; one raw map per pathway per class id."""
    outputs: list[Any] = []
    handles = [
        b.register_forward_hook(
            lambda _, __, out: outputs.append(list(out) if isinstance(out, list) else out)
        )
        for b in feature_blocks(module)
    ]
    try:
        with torch.enable_grad():
            leaves = [
                t.clone().unsqueeze(0).requires_grad_(True) for t in (x if isinstance(x, list) else [x])
            ]
            scores = module(leaves if isinstance(x, list) else leaves[0])
    finally:
        for handle in handles:
            handle.remove()
    picked = outputs[pick(outputs)]
    acts = picked if isinstance(picked, list) else [picked]
    out = []
    for class_id in class_ids:
        grads = torch.autograd.grad(scores[0, class_id], acts, retain_graph=True)
        out.append([torch.relu((g[0] * a[0].detach()).sum(dim=0)) for g, a in zip(grads, acts, strict=True)])
    return out


def assert_same_maps(got: list[Cam], want: list[Cam]) -> None:
    for a, b in zip(got, want, strict=True):
        assert a.class_id == b.class_id
        assert torch.allclose(a.cam, b.cam, atol=1e-4), float((a.cam - b.cam).abs().max())
        assert a.frame_weights == pytest.approx(b.frame_weights, abs=1e-4)


def test_x3d_maps_equal_the_whole_trunk_graphs(
    demo: tuple[nn.Module, list[tuple[torch.Tensor, int]]],
) -> None:
    module, views = demo
    for view, top in views:
        ids = [top, (top + 3) % 7]
        want = [
            normalised(c, raw[0], view.shape[1])
            for c, raw in zip(ids, whole_trunk_cams(module, view, pick_cnn, ids), strict=True)
        ]
        assert_same_maps(grad_cam(module, view, ids), want)


def test_slowfast_maps_equal_the_whole_trunk_graphs() -> None:
    torch.manual_seed(5)
    net = create_slowfast(
        model_num_class=5,
        dropout_rate=0.0,
        stem_dim_outs=(16, 2),
        head_pool_kernel_sizes=((2, 2, 2), (8, 2, 2)),
    )
    for m in net.modules():  # random running statistics: eval-mode BatchNorm is not the identity
        if isinstance(m, nn.BatchNorm3d) and m.running_mean is not None and m.running_var is not None:
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    net.eval()
    fast = torch.randn(3, 8, 64, 64)
    view = [fast[:, torch.linspace(0, 7, 2).long()].clone(), fast]
    raw = whole_trunk_cams(net, view, pick_slowfast, [0, 4])
    want = [normalised(c, fuse(maps), 8) for c, maps in zip([0, 4], raw, strict=True)]
    assert_same_maps(slowfast_cam(net, view, [0, 4]), want)


def test_only_the_head_is_in_the_graph(demo: tuple[nn.Module, list[tuple[torch.Tensor, int]]]) -> None:
    module, views = demo
    x = views[0][0].unsqueeze(0)
    with torch.inference_mode(False):
        scores, activation = head_graph(module, feature_blocks(module), x, pick_cnn)
    assert scores.grad_fn is not None
    assert activation.requires_grad and activation.grad_fn is None, "the trunk below the block has no graph"
    assert all(p.grad is None for p in module.parameters())


def test_hooks_and_fast_convolutions_leave_other_threads_alone(
    demo: tuple[nn.Module, list[tuple[torch.Tensor, int]]],
) -> None:
    """The inference thread may run the module while a map is being made (PyTorch backend):
    its forward, in the middle of the explainer's, keeps no_grad and gives the plain values."""
    module, views = demo
    view, top = views[1]
    want = grad_cam(module, view, [top])  # also caches the picked block: the next call hooks only it
    with torch.no_grad():
        plain = module(view[None])
    inside, resume = threading.Event(), threading.Event()
    explainer: list[int] = []

    def pause(_: nn.Module, __: Any, ___: Any) -> None:
        if threading.get_ident() in explainer:
            inside.set()
            assert resume.wait(60)

    got: list[Cam] = []

    def explain() -> None:
        explainer.append(threading.get_ident())
        got.extend(grad_cam(module, view, [top]))

    blocks = module.blocks
    assert isinstance(blocks, nn.ModuleList)
    handle = blocks[-1].register_forward_hook(pause)  # the head, past the picked block
    thread = threading.Thread(target=explain)
    try:
        thread.start()
        assert inside.wait(60)
        with torch.no_grad():
            during = module(view[None])
    finally:
        resume.set()
        thread.join()
        handle.remove()
    assert not during.requires_grad
    assert torch.equal(during, plain)
    assert_same_maps(got, want)


def analyze(tmp_path: Path, **kwargs: Any) -> dict[str, Any]:
    video = tmp_path / "v.mp4"
    if not video.exists():
        write_video(video, seconds=4, fps=15, width=96, height=64)
    analyzer = Analyzer(models_dir=MODELS, allowed_formats=["mp4"])
    options = JobOptions(segment_seconds=1.0, explain=True)
    return analyzer.analyze(video, "demo_motion", options, **kwargs).to_dict()


def explainer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "explainer"]


def test_the_explainers_thread_gives_the_inline_maps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    where: list[int] = []
    explain = explain_task.SegmentExplainer._explain

    def recorded(self: explain_task.SegmentExplainer, work: Any) -> None:
        where.append(threading.get_ident())
        explain(self, work)

    monkeypatch.setattr(explain_task.SegmentExplainer, "_explain", recorded)
    threaded = analyze(tmp_path)
    assert where and threading.get_ident() not in where
    assert not explainer_threads()
    where.clear()
    monkeypatch.setattr(explain_task, "THREADED", frozenset())
    inline = analyze(tmp_path)
    assert where and set(where) == {threading.get_ident()}
    assert len(threaded["explanations"]) == len(threaded["segments"]) == 4
    assert threaded["explanations"] == inline["explanations"]
    assert threaded["provenance"]["timings"]["explain_seconds"] > 0


class Cancelled(Exception):
    pass


def test_a_cancelled_job_leaves_no_explainer_thread(tmp_path: Path) -> None:
    def cancel(_: float) -> None:
        assert explainer_threads(), "the thread runs while the job does"
        raise Cancelled

    with pytest.raises(Cancelled):
        analyze(tmp_path, on_progress=cancel)
    assert not explainer_threads()


def test_an_error_on_the_explainers_thread_fails_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(module: nn.Module, view: Any, class_ids: list[int]) -> list[Cam]:
        raise RuntimeError("no map today")

    monkeypatch.setattr(explain_task, "method_for", lambda _: Method(HIRESCAM, broken))
    with pytest.raises(RuntimeError, match="no map today"):
        analyze(tmp_path)
    assert not explainer_threads()
