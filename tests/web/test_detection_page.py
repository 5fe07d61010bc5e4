"""The results page of a detection job in a real browser: the tracks listed with their actions,
and each track's box drawn over the video, in its colour, where the object is."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np

from app.analysis.annotate import colour
from app.demo.detection_scene import write_detection_video
from tests.web.conftest import ARTIFACTS, LiveServer

SCRIPTS = [[("moving right", 3.0), ("static", 2.0)], [("rotating", 5.0)]]
MODEL = "demo_actions_detection"

# The canvas pixel at the middle of a box's left edge, and the CSS colour of its track.
PROBE = """([box, id]) => {
  const canvas = document.getElementById('box-canvas');
  const [x0, y0, w, h] = peoplePictureBox(canvas);
  const x = Math.round(x0 + box[0] * w), y = Math.round(y0 + (box[1] + box[3]) / 2 * h);
  const ctx = canvas.getContext('2d');
  let best = 0;
  for (let dx = -2; dx <= 2; dx++) best = Math.max(best, ctx.getImageData(x + dx, y, 1, 1).data[3]);
  return best;
}"""


def test_tracks_and_boxes_over_the_playing_video(
    live_server: LiveServer, browser_page: Any, tmp_path: Path
) -> None:
    page = browser_page
    clip = tmp_path / "people.mp4"
    write_detection_video(clip, SCRIPTS, width=192, height=144, seed=16)
    with clip.open("rb") as fh:
        job = httpx.post(
            f"{live_server.base}/v1/jobs",
            files={"file": ("people.mp4", fh)},
            data={"model": MODEL},
            timeout=60,
        ).json()
    page.goto(f"{live_server.base}/jobs/{job['id']}")
    page.wait_for_selector("body[data-ready=true]", timeout=180_000)
    results = httpx.get(f"{live_server.base}/v1/jobs/{job['id']}/results").json()
    assert results["tracks"], "the demo detector finds the two objects"

    rows = page.locator("#tracks tr")
    assert rows.count() == len(results["tracks"])
    first = results["tracks"][0]
    assert [r["label"] for r in first["runs"]] == [
        a.inner_text() for a in rows.first.locator("td").nth(3).locator("a").all()
    ]

    # Seek to a keyframe: a box for each person there, drawn where the results put it.
    at = results["detections"][0]["time"]
    here = [d for d in results["detections"] if d["time"] == at]
    page.evaluate("t => { const v = document.getElementById('video'); v.pause(); v.currentTime = t; }", at)
    page.wait_for_function(
        "n => Number(document.getElementById('box-canvas').dataset.boxes) >= n", arg=len(here), timeout=20_000
    )
    for d in here:
        assert page.evaluate(PROBE, [d["box"], d["track_id"]]) > 200, f"no outline at {d['box']}"

    # Playing: the boxes follow the video (drawn on every animation frame).
    page.evaluate("() => { const v = document.getElementById('video'); v.muted = true; v.play(); }")
    page.wait_for_function(f"() => document.getElementById('video').currentTime > {at + 1.2}", timeout=20_000)
    assert int(page.evaluate("() => document.getElementById('box-canvas').dataset.boxes")) >= 1

    # The annotated MP4 (rendered by the embedded worker) has the boxes drawn in: at a keyframe,
    # each person's box edge is in its track's colour.
    page.click("#annotated")
    page.wait_for_selector("body[data-annotated=true]", timeout=90_000)
    video = httpx.get(f"{live_server.base}/v1/jobs/{job['id']}/annotated.mp4", timeout=60).content
    with av.open(io.BytesIO(video)) as container:
        frames = [(f.time, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    _, shown = min(frames, key=lambda f: abs(f[0] - at))
    height, width = shown.shape[:2]
    for d in here:
        x1, y1, _, y2 = d["box"]
        edge = shown[round((y1 + y2) / 2 * height), max(0, round(x1 * width) - 2) : round(x1 * width) + 3]

        def distance(track: int, edge: np.ndarray = edge) -> int:
            return int(np.abs(edge.astype(int) - np.array(colour(track))).sum(axis=1).min())

        others = [distance(o["track_id"]) for o in here if o["track_id"] != d["track_id"]]
        assert distance(d["track_id"]) < min([*others, 150]), (
            f"track {d['track_id']}: {edge} at its box's edge"
        )
    assert not page.console_errors, page.console_errors
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "detection_page.png"), full_page=True)
