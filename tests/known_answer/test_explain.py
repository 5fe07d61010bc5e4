"""Known answers for ``explain``: the demo model's class activation maps must point at the acting objects.

Scripted synthetic videos (``app.demo.synthetic``) know every object's coverage at every
frame. For each explained segment the heatmap's peak cell (on the displayed frame's grid)
must overlap the bounding box of the foreground objects at the peak's time in >= 90 % of
the moving, rotating and flashing segments; static segments have no action to point at and
are only reported. A sanity check after Adebayo et al. (2018): with the model's blocks
re-initialised one by one from the top, the map must change (Spearman rank correlation
with the trained model's map < 0.5), so a map that ignores the model cannot pass. And once
through HTTP: ``explain=true`` gives explanations in the results, ``provenance`` names torch.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from app.analysis.catalog import load_catalog
from app.analysis.engine import Analyzer
from app.analysis.explain import cell_box, grad_cam
from app.analysis.explain_png import STRIP, frames_at
from app.analysis.loader import ModelLoader
from app.analysis.transforms import ClipTransform
from app.api.app import create_app
from app.demo.synthetic import SyntheticScene, write_scripted_video
from app.options import JobOptions
from tests.conftest import REPO
from tests.integration.conftest import app_worker, close_app, make_settings

MODELS = REPO / "models"
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
    script, width, height, seed = VIDEOS[request.param]
    path = tmp_path_factory.mktemp("explain") / "scripted.mp4"
    write_scripted_video(path, script, fps=FPS, width=width, height=height, seed=seed)
    return path, SyntheticScene(script, fps=FPS, width=width, height=height, seed=seed)


def test_heatmap_peaks_on_the_acting_objects(video: tuple[Path, SyntheticScene]) -> None:
    path, scene = video
    analyzer = Analyzer(models_dir=MODELS, allowed_formats=FORMATS)
    result = analyzer.analyze(
        path, "demo_motion", JobOptions(segment_seconds=SEGMENT, explain=True)
    ).to_dict()
    explanations = result["explanations"]
    assert [e["segment"] for e in explanations] == [s["index"] for s in result["segments"]]
    assert result["provenance"]["explain_backend"] == "torch"
    scored, static, exact = [], [], []
    for explanation, segment in zip(explanations, result["segments"], strict=True):
        assert explanation["label"] == segment["labels"][0]["label"] and explanation["method"] == "hirescam"
        heat = explanation["heatmap"]
        data = np.asarray(heat["data"])
        assert data.shape == (heat["t"], heat["h"], heat["w"]) and data.min() >= 0 and data.max() == 1.0
        assert heat["w"] / heat["h"] == pytest.approx(scene.width / scene.height, rel=0.15)
        part = scene.label_at(round((segment["start"] + segment["end"]) / 2 * FPS))
        (static if part == "static" else scored).append(peak_hits(scene, explanation))
        if part != "static":
            exact.append(peak_hits(scene, explanation, window=0))
    rate = sum(scored) / len(scored)
    print(
        f"peak on the objects: {rate:.0%} of {len(scored)} acting segments "
        f"({sum(exact)} at the peak's own frame); static: {sum(static)}/{len(static)}"
    )
    assert rate >= 0.9, f"the heatmap's peak hit the acting objects in {rate:.0%} of segments"


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


def test_map_depends_on_the_trained_weights() -> None:
    """Cascading randomisation (Adebayo et al., 2018): every step must change the map."""
    spec = load_catalog(MODELS).get("demo_motion")
    module = ModelLoader(MODELS, device="cpu").load(spec).module
    transform = ClipTransform.for_spec(spec)
    clips = []
    for n, label in enumerate(["moving right", "rotating", "flashing", "moving up"]):
        scene = SyntheticScene([(label, 2.0)], fps=FPS, width=192, height=144, seed=100 + n)
        frames = [
            transform.prepare_frame(scene.frame(k))
            for k in range(0, 8 * spec.sampling_rate, spec.sampling_rate)
        ]
        view = transform.views(frames)[0]
        assert isinstance(view, torch.Tensor)
        with torch.inference_mode():
            class_id = int(module(view[None]).argmax())
        clips.append((view, class_id, grad_cam(module, view, [class_id])[0].cam))
    randomised = copy.deepcopy(module)
    torch.manual_seed(0)
    blocks = list(randomised.blocks)  # type: ignore[arg-type]
    correlations = []
    for block in reversed(blocks):
        for p in block.parameters():
            torch.nn.init.normal_(p, std=0.1)
        per_clip = [spearman(cam, grad_cam(randomised, view, [cid])[0].cam) for view, cid, cam in clips]
        correlations.append(float(np.mean(per_clip)))
    print("mean Spearman per cascade step (head first):", [round(c, 2) for c in correlations])
    assert all(c < 0.5 for c in correlations), correlations


@pytest.mark.anyio
async def test_explanations_through_http(tmp_path: Path) -> None:
    path = tmp_path / "scripted.mp4"
    write_scripted_video(path, SCRIPT[:2], fps=FPS, width=192, height=144, seed=5)
    app = create_app(make_settings(tmp_path, MODELS, default_model="demo_motion"))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            ids = []
            for explain in ("true", "false"):
                with path.open("rb") as fh:
                    response = await client.post(
                        "/v1/jobs",
                        files={"file": ("scripted.mp4", fh, "video/mp4")},
                        data={"model": "demo_motion", "segment_seconds": str(SEGMENT), "explain": explain},
                    )
                assert response.status_code == 202, response.text
                ids.append(response.json()["id"])
            worker = app_worker(app)
            assert worker.run_once() and worker.run_once()
            with_, without = [(await client.get(f"/v1/jobs/{i}/results")).json() for i in ids]
    finally:
        close_app(app)
    assert with_["options"]["explain"] is True
    assert len(with_["explanations"]) == len(with_["segments"]) == 4
    assert with_["provenance"]["explain_backend"] == "torch"
    assert with_["provenance"]["timings"]["explain_seconds"] > 0
    assert "explain_seconds" not in without["provenance"]["timings"]
    assert "explanations" not in without and "explain_backend" not in without["provenance"]
    for a, b in zip(with_["segments"], without["segments"], strict=True):  # explaining changes no score
        assert [x["class_id"] for x in a["labels"]] == [x["class_id"] for x in b["labels"]]
        assert [x["score"] for x in a["labels"]] == pytest.approx([x["score"] for x in b["labels"]], abs=1e-4)


def _tint(change: np.ndarray, grid: np.ndarray, cell: Any) -> float:
    """Mean change (grey levels) of the picture over one heatmap cell."""
    height, width = change.shape
    x0, y0, x1, y1 = (round(v) for v in cell_box(grid.shape, (height, width), int(cell[0]), int(cell[1])))
    return float(change[y0:y1, x0:x1].mean())


def test_cli_writes_one_picture_per_explanation(tmp_path: Path) -> None:
    """``--explain --explain-dir``: a PNG per explained segment, the frame as displayed plus
    the weight strip, tinted where the map is hot and left as is where it is zero."""
    path = tmp_path / "scripted.mp4"
    write_scripted_video(
        path, [("rotating", 2.0), ("moving left", 2.0)], fps=FPS, width=192, height=144, seed=9
    )
    out_dir = tmp_path / "why"
    env = {**os.environ, "VAS_MODELS_DIR": str(MODELS)}
    command = [sys.executable, "-m", "app", "analyze", str(path), "--model", "demo_motion"]
    command += ["--segment-seconds", str(SEGMENT), "--explain", "--explain-dir", str(out_dir), "--json"]
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr
    explanations = json.loads(done.stdout)["explanations"]
    assert sorted(p.name for p in out_dir.iterdir()) == [
        f"segment-{e['segment']:04d}-{e['class_id']}.png" for e in explanations
    ]
    for item in explanations:
        picture = np.asarray(Image.open(out_dir / f"segment-{item['segment']:04d}-{item['class_id']}.png"))
        assert picture.shape == (144 + STRIP, 192, 3)
        heat = item["heatmap"]
        when = heat["times"][heat["t"] // 2]
        frame = frames_at(path, [when])[when].astype(np.float32)
        grid = np.asarray(heat["data"][heat["t"] // 2])
        change = np.abs(picture[:144].astype(np.float32) - frame).mean(axis=2)
        hot, cold = np.unravel_index(grid.argmax(), grid.shape), np.argwhere(grid == 0)
        assert len(cold), "cells outside the crop are zero"

        cold_tint = float(np.mean([_tint(change, grid, c) for c in cold]))
        assert _tint(change, grid, hot) > 5 * cold_tint + 5, (_tint(change, grid, hot), cold_tint)
