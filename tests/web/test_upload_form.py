"""The upload page in a real browser: the model select starts on the server's default model,
the time range and score floor reach the API, the job list reads durations as people do,
and the favicon is there."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.media import write_video
from tests.web.conftest import LiveServer

ZOO_DEFAULT = "x3d_xs"  # listed after demo_motion (no weights here, so sorted last): not first


@pytest.mark.settings(default_model=ZOO_DEFAULT)
def test_model_select_starts_on_the_servers_default(live_server: LiveServer, browser_page: Any) -> None:
    catalog = httpx.get(f"{live_server.base}/v1/models").json()
    assert catalog["default_model"] == ZOO_DEFAULT
    page = browser_page
    page.goto(live_server.base + "/")
    page.wait_for_selector(f"#model option[value='{ZOO_DEFAULT}']", state="attached")
    first = page.locator("#model option").first.get_attribute("value")
    assert first != ZOO_DEFAULT, "the test needs a default that is not listed first"
    assert page.locator("#model").input_value() == ZOO_DEFAULT
    assert "default" in page.locator(f"#model option[value='{ZOO_DEFAULT}']").inner_text()
    assert not page.console_errors, page.console_errors


def test_form_sends_min_score_start_and_end(
    live_server: LiveServer, browser_page: Any, tmp_path: Path
) -> None:
    page = browser_page
    clip = write_video(tmp_path / "ranged.mp4", seconds=6.0, fps=10, width=96, height=64)
    page.goto(live_server.base + "/")
    page.wait_for_selector(f"#model option[value='{live_server.model}']", state="attached")
    page.select_option("#model", live_server.model)
    page.set_input_files("#file", str(clip))
    page.fill("input[name=min_score]", "0.25")
    page.fill("input[name=start]", "1.5")
    page.fill("input[name=end]", "4")
    page.click("#submit")
    job_id = page.wait_for_selector("#upload-status a", timeout=30_000).inner_text()
    options = httpx.get(f"{live_server.base}/v1/jobs/{job_id}").json()["options"]
    assert (options["min_score"], options["start"], options["end"]) == (0.25, 1.5, 4.0)
    assert not page.console_errors, page.console_errors


def test_job_list_shows_durations_as_clock_times(
    live_server: LiveServer, browser_page: Any, tmp_path: Path
) -> None:
    clip = write_video(tmp_path / "eighty.mp4", seconds=80.0, fps=5, width=64, height=48)
    with clip.open("rb") as fh:  # end=1: the embedded worker need not analyse 80 s
        job = httpx.post(
            f"{live_server.base}/v1/jobs",
            files={"file": ("eighty.mp4", fh)},
            data={"model": live_server.model, "end": "1"},
        ).json()
    assert round(job["video"]["duration"]) == 80
    page = browser_page
    page.goto(live_server.base + "/")
    cell = page.locator(f"#jobs tr[data-job='{job['id']}'] td").nth(4)
    cell.wait_for(timeout=30_000)
    assert cell.inner_text() == "1:20"
    lengths = page.evaluate("() => [null, 0, 8.44, 9.96, 42.4, 59.6, 80, 80.4, 3723].map(duration)")
    assert lengths == ["\u2013", "0.0 s", "8.4 s", "10 s", "42 s", "1:00", "1:20", "1:20", "1:02:03"]
    positions = page.evaluate("() => [4.5, 59.96, 80, 80.5, 3723].map(seconds)")
    assert positions == ["4.5 s", "1:00.0", "1:20.0", "1:20.5", "1:02:03.0"]
    assert not page.console_errors, page.console_errors


def test_favicon_is_an_icon(live_server: LiveServer) -> None:
    image = pytest.importorskip("PIL.Image", reason="Pillow decodes the icon")
    response = httpx.get(f"{live_server.base}/favicon.ico")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/vnd.microsoft.icon"
    icon = image.open(io.BytesIO(response.content))
    assert icon.format == "ICO" and {(16, 16), (32, 32)} <= set(icon.info["sizes"])
    page = httpx.get(f"{live_server.base}/").text
    assert '<link rel="icon" href="/favicon.ico">' in page
