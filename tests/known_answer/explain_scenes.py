"""Shared by the explanation known answers (HiResCAM on ``demo_motion``, on ``demo_mvit``'s patch tokens).

Scripted synthetic videos (``app.demo.synthetic``) know every object's coverage at every
frame: ``hit_rates`` scores a job's explanations against them, ``randomised_correlations``
runs Adebayo et al.'s (2018) cascading weight randomisation on demo clips.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from app.analysis.explain import cell_box
from app.analysis.spec import ModelSpec
from app.analysis.transforms import ClipTransform
from app.demo.synthetic import SyntheticScene, write_scripted_video

FPS = 30
PART = 4.0
SEGMENT = 2.0
SCRIPT = [
    ("moving right", PART),
    ("static", PART),
    ("moving up", PART),
    ("rotating", PART),
    ("moving left", PART),
    ("flashing", PART),
    ("moving down", PART),
]
VIDEOS = {"192x144": (SCRIPT, 192, 144, 2024), "320x240": (SCRIPT[::-1], 320, 240, 77)}
FORMATS = ["mp4"]


def _box(scene: SyntheticScene, frames: list[int]) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the foreground objects over ``frames``; None if none is visible."""
    alpha = np.zeros((scene.height, scene.width), dtype=np.float32)
    for index in frames:
        alpha = np.maximum(alpha, scene.object_alpha(min(index, scene.frame_count - 1)))
    ys, xs = np.nonzero(alpha > 0.25)
    if not len(xs):
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def peak_hits(scene: SyntheticScene, explanation: dict[str, Any], window: int = 1) -> bool:
    """Whether the map's peak cell overlaps the objects' box over the frames of the peak's
    time step and ``window`` steps either side (the layer's temporal receptive field is
    wider still); flashed off over all of them: their box over the explained clip."""
    heat = explanation["heatmap"]
    data = np.asarray(heat["data"])
    k, i, j = (int(n) for n in np.unravel_index(int(data.argmax()), data.shape))
    x0, y0, x1, y1 = cell_box((heat["h"], heat["w"]), (scene.height, scene.width), i, j)
    times = [f["time"] for f in explanation["frames"]]
    per_step = max(1, len(times) // heat["t"])
    near = times[max(0, k - window) * per_step : (k + window + 1) * per_step]
    box = _box(scene, [round(t * FPS) for t in near]) or _box(scene, [round(t * FPS) for t in times])
    assert box is not None, "every scripted clip shows its objects"
    bx0, by0, bx1, by1 = box
    return x0 < bx1 and bx0 < x1 and y0 < by1 and by0 < y1


@pytest.fixture(scope="module", params=sorted(VIDEOS))
def video(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, SyntheticScene]:
    """A scripted video (two sizes and scripts) and the scene that drew it."""
    script, width, height, seed = VIDEOS[request.param]
    path = tmp_path_factory.mktemp("explain") / "scripted.mp4"
    write_scripted_video(path, script, fps=FPS, width=width, height=height, seed=seed)
    return path, SyntheticScene(script, fps=FPS, width=width, height=height, seed=seed)


@dataclass(frozen=True)
class Hits:
    """Per acting segment whether the peak hit (``scored``), the same at the peak's own frame
    (``exact``), and the static segments' hits (reported, not scored)."""

    scored: list[bool]
    exact: list[bool]
    static: list[bool]

    @property
    def rate(self) -> float:
        return sum(self.scored) / len(self.scored)

    def line(self) -> str:
        return (
            f"peak on the objects: {self.rate:.0%} of {len(self.scored)} acting segments "
            f"({sum(self.exact)} at the peak's own frame); static: {sum(self.static)}/{len(self.static)}"
        )


def hit_rates(result: dict[str, Any], scene: SyntheticScene, method: str) -> Hits:
    """Checks every explanation's form against its segment and scores its peak."""
    explanations = result["explanations"]
    assert [e["segment"] for e in explanations] == [s["index"] for s in result["segments"]]
    assert result["provenance"]["explain_backend"] == "torch"
    hits = Hits([], [], [])
    for explanation, segment in zip(explanations, result["segments"], strict=True):
        assert explanation["label"] == segment["labels"][0]["label"] and explanation["method"] == method
        heat = explanation["heatmap"]
        data = np.asarray(heat["data"])
        assert data.shape == (heat["t"], heat["h"], heat["w"]) and data.min() >= 0 and data.max() == 1.0
        assert heat["w"] / heat["h"] == pytest.approx(scene.width / scene.height, rel=0.15)
        part = scene.label_at(round((segment["start"] + segment["end"]) / 2 * FPS))
        (hits.static if part == "static" else hits.scored).append(peak_hits(scene, explanation))
        if part != "static":
            hits.exact.append(peak_hits(scene, explanation, window=0))
    return hits


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (ties share theirs), for Spearman's correlation."""
    order = values.argsort(kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ra, rb = _ranks(a.flatten().numpy()), _ranks(b.flatten().numpy())
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


Explain = Callable[[nn.Module, torch.Tensor, int], torch.Tensor]
"""(module, view, class id) -> the map (t, h, w)."""


def demo_views(spec: ModelSpec, module: nn.Module) -> list[tuple[torch.Tensor, int]]:
    """Four one-action demo clips as the pipeline prepares them, each with the model's top class."""
    transform = ClipTransform.for_spec(spec)
    out = []
    for n, label in enumerate(["moving right", "rotating", "flashing", "moving up"]):
        scene = SyntheticScene([(label, 2.0)], fps=FPS, width=192, height=144, seed=100 + n)
        frames = [
            transform.prepare_frame(scene.frame(k))
            for k in range(0, spec.frames * spec.sampling_rate, spec.sampling_rate)
        ]
        packed = transform.views(frames)[0]
        assert isinstance(packed, np.ndarray)
        view = torch.from_numpy(packed)
        with torch.inference_mode():
            out.append((view, int(module(view[None]).argmax())))
    return out


def randomised_correlations(
    module: nn.Module,
    views: list[tuple[torch.Tensor, int]],
    cascade: Callable[[nn.Module], Sequence[nn.Module]],
    explain: Explain,
) -> list[float]:
    """Cascading randomisation (Adebayo et al., 2018): the parts ``cascade`` lists (top first)
    re-initialised one after another; per step the mean Spearman correlation of the maps with
    the trained model's."""
    trained = [explain(module, view, class_id) for view, class_id in views]
    randomised = copy.deepcopy(module)
    torch.manual_seed(0)
    correlations = []
    for part in cascade(randomised):
        for p in part.parameters():
            torch.nn.init.normal_(p, std=0.1)
        per_clip = [
            spearman(cam, explain(randomised, view, cid))
            for (view, cid), cam in zip(views, trained, strict=True)
        ]
        correlations.append(float(np.mean(per_clip)))
    return correlations
