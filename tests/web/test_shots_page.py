"""Shots on the results page, in a real browser: the upload form's "Detect shots" box asks
for them, and the job page draws a boundary where each shot after the first begins (a thin
line after a cut, a hatched band for a gradual transition) that seeks the video when
clicked. A job that did not ask shows none. The video is edited from demo scenes with a hard
cut and a dissolve at known frames (``tests/shot_videos.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.shot_videos import FPS, Part, edited, write
from tests.web.conftest import LiveServer

PARTS = [Part("moving right", 2.0, 21), Part("rotating", 2.0, 22), Part("moving up", 2.5, 23)]
TOLERANCE = 2
"""Frames a found boundary may be off by."""


def upload(page: Any, live_server: LiveServer, clip: Path, *, shots: bool) -> str:
    page.goto(live_server.base + "/")
    page.wait_for_selector(f"#model option[value='{live_server.model}']", state="attached")
    page.select_option("#model", live_server.model)
    page.set_input_files("#file", str(clip))
    assert not page.is_checked("input[name=detect_shots]"), "shots are opt-in"
    if shots:
        page.check("input[name=detect_shots]")
    page.click("#submit")
    job_id: str = page.wait_for_selector("#upload-status a", timeout=30_000).inner_text()
    page.goto(f"{live_server.base}/jobs/{job_id}")
    page.wait_for_selector("body[data-ready=true]", timeout=120_000)
    return job_id


def test_detect_shots_box_and_the_boundaries_on_the_timeline(
    live_server: LiveServer, browser_page: Any, tmp_path: Path
) -> None:
    edit = edited(PARTS, dissolve_after=1)
    clip = write(edit.frames, tmp_path / "edited.mp4")
    page = browser_page
    job_id = upload(page, live_server, clip, shots=True)
    results = httpx.get(f"{live_server.base}/v1/jobs/{job_id}/results").json()
    assert results["options"]["detect_shots"] is True
    shots = results["shots"]
    ((cut,), ((first, last),)) = (edit.cuts, edit.dissolves)
    found = [(round(s["start"] * FPS), s["transition"]) for s in shots[1:]]
    assert len(found) == 2 and found[0][1] == "cut" and abs(found[0][0] - cut) <= TOLERANCE, found
    assert found[1][1] == "gradual" and first <= found[1][0] <= last + 1, found

    timeline = page.locator("#timeline")
    assert timeline.get_attribute("data-shots") == str(len(shots))
    markers = page.locator("#timeline .shot")
    assert markers.count() == len(shots) - 1, "no boundary before the first shot"
    kinds = [markers.nth(i).get_attribute("class") for i in range(markers.count())]
    assert kinds == ["shot cut", "shot gradual"]
    strip = timeline.bounding_box()
    duration = float(timeline.get_attribute("data-duration"))
    widths = []
    for i, shot in enumerate(shots[1:]):
        marker = markers.nth(i)
        assert marker.get_attribute("data-index") == str(shot["index"])
        assert f"({'gradual transition' if shot['transition'] == 'gradual' else 'cut'})" in (
            marker.get_attribute("title") or ""
        )
        box = marker.bounding_box()
        centre = box["x"] + box["width"] / 2 - strip["x"]
        assert centre == pytest.approx(strip["width"] * shot["start"] / duration, abs=2.0)
        widths.append(box["width"])
    assert widths[0] <= 3 < widths[1], f"a cut is a thin line, a gradual one a band: {widths}"
    keys = page.locator("#legend .shot-key").all_inner_texts()
    assert keys == ["cut", "gradual transition"], keys

    # A boundary is a way into the video: clicking it seeks to its shot.
    markers.nth(1).click()
    at = page.evaluate("() => document.getElementById('video').currentTime")
    assert at == pytest.approx(shots[2]["start"], abs=0.05)
    assert not page.console_errors, page.console_errors


def test_a_job_without_the_box_has_no_boundaries(
    live_server: LiveServer, browser_page: Any, tmp_path: Path
) -> None:
    clip = write(edited(PARTS[:2]).frames, tmp_path / "two.mp4")
    page = browser_page
    job_id = upload(page, live_server, clip, shots=False)
    results = httpx.get(f"{live_server.base}/v1/jobs/{job_id}/results").json()
    assert results["options"]["detect_shots"] is False and "shots" not in results
    assert page.locator("#timeline .seg").count() == len(results["segments"]) > 0
    assert page.locator("#timeline .shot").count() == 0
    assert page.locator("#timeline").get_attribute("data-shots") is None
    assert page.locator("#legend .shot-key").count() == 0
    assert not page.console_errors, page.console_errors
