"""The upload page's "Ranges" field in a real browser: "0:4, 10:12.5" reaches the API as the
JSON list of ``segments``; a malformed entry is named on the page and nothing is sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.media import write_video
from tests.web.conftest import LiveServer


def test_form_sends_ranges_as_a_json_list(live_server: LiveServer, browser_page: Any, tmp_path: Path) -> None:
    page = browser_page
    clip = write_video(tmp_path / "ranges.mp4", seconds=6.0, fps=10, width=96, height=64)
    page.goto(live_server.base + "/")
    page.wait_for_selector(f"#model option[value='{live_server.model}']", state="attached")
    page.set_input_files("#file", str(clip))
    page.fill("input[name=segments]", "0:1.5, 2 : x")
    page.click("#submit")
    error = page.wait_for_selector("#upload-status .error", timeout=10_000).inner_text()
    assert '"2 : x" is not START:END' in error
    assert httpx.get(f"{live_server.base}/v1/jobs").json()["items"] == []
    page.fill("input[name=segments]", "4:5.5, 0:1.5")
    page.click("#submit")
    job_id = page.wait_for_selector("#upload-status a", timeout=30_000).inner_text()
    options = httpx.get(f"{live_server.base}/v1/jobs/{job_id}").json()["options"]
    assert options["segments"] == [[4.0, 5.5], [0.0, 1.5]]
    assert not page.console_errors, page.console_errors
