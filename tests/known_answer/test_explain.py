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

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from app.analysis.catalog import load_catalog
from app.analysis.engine import Analyzer
from app.analysis.explain import cell_box, grad_cam
from app.analysis.explain_png import STRIP, frames_at
from app.analysis.loader import ModelLoader
from app.api.app import create_app
from app.demo.synthetic import SyntheticScene, write_scripted_video
from app.options import JobOptions
from tests.conftest import REPO
from tests.integration.conftest import app_worker, close_app, make_settings
from tests.known_answer.explain_scenes import (
    FORMATS,
    FPS,
    SCRIPT,
    SEGMENT,
    demo_views,
    hit_rates,
    randomised_correlations,
    video,
)

__all__ = ["video"]  # the shared scripted-video fixture: imported so that pytest finds it here

MODELS = REPO / "models"


def test_heatmap_peaks_on_the_acting_objects(video: tuple[Path, SyntheticScene]) -> None:
    path, scene = video
    analyzer = Analyzer(models_dir=MODELS, allowed_formats=FORMATS)
    result = analyzer.analyze(
        path, "demo_motion", JobOptions(segment_seconds=SEGMENT, explain=True)
    ).to_dict()
    hits = hit_rates(result, scene, "hirescam")
    print(hits.line())
    assert hits.rate >= 0.9, f"the heatmap's peak hit the acting objects in {hits.rate:.0%} of segments"


def test_map_depends_on_the_trained_weights() -> None:
    """Cascading randomisation (Adebayo et al., 2018): every step must change the map."""
    spec = load_catalog(MODELS).get("demo_motion")
    module = ModelLoader(MODELS, device="cpu").load(spec).module
    correlations = randomised_correlations(
        module,
        demo_views(spec, module),
        lambda m: list(reversed(list(m.blocks))),  # type: ignore[arg-type]
        lambda m, view, class_id: grad_cam(m, view, [class_id])[0].cam,
    )
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
