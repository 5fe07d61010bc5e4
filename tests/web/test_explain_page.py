"""The results page's "why" box, in a real browser, for a job run with ``explain=true`` on the
demo model: shown only when the job has explanations; ticked, it draws the current segment's
heatmap on a canvas over the video (pixels that are not transparent, where the map is hot) and
the frame weights as a strip under the timeline; unticked, both go."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from app.demo.synthetic import write_scripted_video
from tests.web.conftest import LiveServer

CANVAS_PIXELS = """() => {
  const canvas = document.getElementById('why-canvas');
  if (!canvas.width || !canvas.height) return [0, 0];
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let opaque = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) opaque++;
  return [opaque, data.length / 4];
}"""


def submit(live_server: LiveServer, clip: Path, *, explain: bool) -> str:
    with clip.open("rb") as fh:
        response = httpx.post(
            f"{live_server.base}/v1/jobs",
            files={"file": (clip.name, fh, "video/mp4")},
            data={"model": live_server.model, "segment_seconds": "2", "explain": str(explain).lower()},
            timeout=60,
        )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def test_why_box_overlays_the_heatmap_and_shows_the_frame_weights(
    live_server: LiveServer, browser_page: Any, tmp_path: Path
) -> None:
    clip = tmp_path / "scripted.mp4"
    write_scripted_video(
        clip, [("rotating", 2.0), ("moving right", 2.0)], fps=30, width=160, height=120, seed=4
    )
    page = browser_page
    job_id = submit(live_server, clip, explain=True)
    page.goto(f"{live_server.base}/jobs/{job_id}")
    page.wait_for_selector("body[data-ready=true]", timeout=120_000)
    results = httpx.get(f"{live_server.base}/v1/jobs/{job_id}/results").json()
    assert len(results["explanations"]) == 2

    toggle = page.locator("#why-toggle")
    assert toggle.is_visible() and not page.is_checked("#why"), "offered, off until asked"
    assert page.locator("#why-canvas").is_hidden() and page.locator("#why-strip").is_hidden()
    page.check("#why")
    page.wait_for_selector("body[data-why=on]")
    assert page.locator("#why-canvas").is_visible()
    opaque, total = page.evaluate(CANVAS_PIXELS)
    assert total > 0 and 0 < opaque < total, f"the map covers part of the picture: {opaque} of {total}"
    assert page.locator("#why-canvas").get_attribute("data-segment") == "0"

    # Another segment: its own map.
    page.evaluate("() => { document.getElementById('video').currentTime = 3.0; }")
    page.wait_for_function("() => document.getElementById('why-canvas').dataset.segment === '1'")
    assert page.evaluate(CANVAS_PIXELS)[0] > 0

    weights = page.locator("#why-strip .weight")
    frames = sum(len(item["frames"]) for item in results["explanations"])
    assert weights.count() == frames > 0
    heights = [weights.nth(i).bounding_box()["height"] for i in range(frames)]
    strip = page.locator("#why-strip").bounding_box()
    assert max(f["weight"] for item in results["explanations"] for f in item["frames"]) == 1.0
    assert abs(max(heights) - strip["height"]) <= 1, "the strongest frame's bar fills the strip"
    assert min(heights) < strip["height"] / 2 or len(set(heights)) > 1, "bars differ with the weights"

    page.uncheck("#why")
    page.wait_for_selector("body[data-why=off]")
    assert page.locator("#why-canvas").is_hidden() and page.locator("#why-strip").is_hidden()
    assert not page.console_errors, page.console_errors


def test_no_why_box_without_explanations(live_server: LiveServer, browser_page: Any, tmp_path: Path) -> None:
    clip = tmp_path / "plain.mp4"
    write_scripted_video(clip, [("rotating", 2.0)], fps=30, width=160, height=120, seed=4)
    page = browser_page
    job_id = submit(live_server, clip, explain=False)
    page.goto(f"{live_server.base}/jobs/{job_id}")
    page.wait_for_selector("body[data-ready=true]", timeout=120_000)
    assert page.locator("#why-toggle").is_hidden()
    assert page.locator("#why-strip .weight").count() == 0
    assert not page.console_errors, page.console_errors
