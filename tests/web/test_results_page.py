"""The results page in a real browser: upload a generated clip, watch it finish, read the
timeline, the label track and the tables; the screenshot lands in test-artifacts/."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import make_settings, shared_analyzer
from tests.live import serving
from tests.web.conftest import ARTIFACTS, DEMO_MODELS, LiveServer

SCRIPT = [("moving right", 3.0), ("rotating", 3.0), ("moving up", 3.0)]


def make_clip(directory: Path) -> Path:
    from app.demo.synthetic import write_scripted_video

    path = directory / "scripted.mp4"
    write_scripted_video(path, SCRIPT, fps=30, width=160, height=120, seed=3)
    return path


def test_upload_watch_and_explore_results(live_server: LiveServer, browser_page: Any, tmp_path: Path) -> None:
    page = browser_page
    clip = make_clip(tmp_path)
    page.goto(live_server.base + "/")
    page.wait_for_selector(f"#model option[value='{live_server.model}']", state="attached")
    page.select_option("#model", live_server.model)
    page.set_input_files("#file", str(clip))
    page.fill("input[name=segment_seconds]", "1")
    page.fill("input[name=top_k]", "3")
    page.click("#submit")
    link = page.wait_for_selector("#upload-status a", timeout=30_000)
    job_id = link.inner_text()
    assert page.locator("#upload-progress").evaluate("bar => bar.value") == 1

    # The job list refreshes itself until the embedded worker has finished the job.
    row = page.locator(f"#jobs tr[data-job='{job_id}']")
    row.locator(".status.succeeded").wait_for(timeout=120_000)
    assert "scripted.mp4" in row.inner_text() and live_server.model in row.inner_text()

    row.locator("a").click()
    page.wait_for_selector("body[data-ready=true]", timeout=60_000)
    results = httpx.get(f"{live_server.base}/v1/jobs/{job_id}/results").json()
    segments = results["segments"]
    assert len(segments) >= 6

    # Timeline: one block per segment, coloured and labelled by its top-1 label.
    blocks = page.locator("#timeline .seg")
    assert blocks.count() == len(segments)
    top1 = [s["labels"][0]["label"] for s in segments]
    assert [blocks.nth(i).get_attribute("data-label") for i in range(len(segments))] == top1
    assert set(page.locator("#legend").inner_text().splitlines()) == set(top1)
    # The demo model knows these motions: the timeline shows the script.
    for second, (label, _) in zip((1, 4, 7), SCRIPT, strict=True):
        assert top1[second] == label, (second, top1)

    # The WebVTT track is loaded, and seeking (a timeline click) shows the current label.
    cue_count = page.evaluate("() => document.getElementById('video').textTracks[0].cues.length")
    assert cue_count == len(segments)
    blocks.nth(4).click()
    assert (
        abs(page.evaluate("() => document.getElementById('video').currentTime") - segments[4]["start"]) < 0.05
    )
    page.wait_for_function(
        "label => document.getElementById('now').textContent.startsWith(label)", arg=top1[4], timeout=10_000
    )
    assert page.locator("#segments tr.current").get_attribute("data-index") == "4"

    # Playing moves the label on (the player decodes the stored H.264 video).
    page.evaluate(
        "() => { const v = document.getElementById('video'); v.muted = true; v.currentTime = 0; v.play(); }"
    )
    page.wait_for_function("() => document.getElementById('video').currentTime > 1.2", timeout=20_000)
    page.wait_for_function(
        "label => document.getElementById('now').textContent.startsWith(label)", arg=top1[1], timeout=10_000
    )

    # Runs, summary and the per-segment top-k table.
    assert page.locator("#runs tr").count() == len(results["runs"])
    assert page.locator("#summary tr").count() == len(results["summary"])
    assert page.locator("#segments tr").count() == len(segments)
    assert page.locator("#segments tr").first.locator("div").count() == len(segments[0]["labels"])

    # The annotated MP4: rendered by the embedded worker on request, then played.
    page.click("#annotated")
    page.wait_for_selector("body[data-annotated=true]", timeout=90_000)
    page.evaluate("() => { const v = document.getElementById('video'); v.pause(); v.currentTime = 4.5; }")
    page.wait_for_function("() => document.getElementById('video').readyState >= 2", timeout=20_000)
    assert not page.console_errors, page.console_errors
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "results_page.png"), full_page=True)


class HeldAfterFirstBatch:
    """The shared analyzer, each job held after its first partial batch (saved by then) until
    ``release``: the page opens while the job surely runs, however fast the machine."""

    def __init__(self, analyzer: Any) -> None:
        self.analyzer, self.release = analyzer, threading.Event()

    def analyze(
        self,
        video: Path,
        model: str,
        options: Any,
        on_progress: Callable[[float], None] | None = None,
        on_segments: Any = None,
    ) -> Any:
        def progress(fraction: float) -> None:
            if on_progress is not None:
                on_progress(fraction)
            if fraction < 1.0:
                self.release.wait(timeout=120)

        return self.analyzer.analyze(video, model, options, progress, on_segments)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.analyzer, name)


def test_job_page_shows_partial_results_while_running(tmp_path: Path, browser_page: Any) -> None:
    """Opened while the job runs, the page follows the events stream: the timeline fills
    in batch by batch, then the final results replace the partial ones."""
    from app.api.app import create_app
    from tests.media import write_video

    settings = make_settings(
        tmp_path, DEMO_MODELS, default_model="demo_motion", poll_interval=0.1, batch_size=1
    )
    held = HeldAfterFirstBatch(shared_analyzer(settings))
    app = create_app(settings, embedded_worker=True, analyzer_factory=lambda: held)
    page = browser_page
    clip = write_video(tmp_path / "long.mp4", seconds=16.0, fps=15, width=96, height=64)
    try:
        with serving(app) as base:
            with clip.open("rb") as fh:
                job = httpx.post(
                    f"{base}/v1/jobs", files={"file": ("long.mp4", fh)}, data={"segment_seconds": "0.5"}
                ).json()
            page.goto(f"{base}/jobs/{job['id']}")
            page.wait_for_function(
                "() => Number(document.body.dataset.partialBatches || '0') >= 1", timeout=60_000
            )
            assert page.locator("#status").inner_text() == "running"
            held.release.set()
            page.wait_for_selector("body[data-ready=true]", timeout=120_000)
            assert page.locator("#timeline .seg").count() == 32
            assert page.locator("#status").inner_text() == "succeeded"
    finally:
        held.release.set()
    assert not page.console_errors, page.console_errors


@pytest.mark.settings(auth_enabled=True)
def test_pages_work_with_auth_on(live_server: LiveServer, browser_page: Any, tmp_path: Path) -> None:
    """The key is typed once (kept in sessionStorage), sent on every call, and the video and
    label track, which cannot send headers, are fetched with it as blobs."""
    from app.store.factory import open_access_stores, open_store
    from tests.media import write_video

    store = open_store(live_server.settings)
    try:
        keys, _ = open_access_stores(live_server.settings, store)
        _, secret = keys.create_key("acme", "browser")
    finally:
        store.close()
    page = browser_page
    page.goto(live_server.base + "/")
    page.wait_for_selector("#key-dialog:not([hidden])")
    page.fill("#key-input", "vas_wrong")
    page.click("#key-form button")
    page.wait_for_function(
        "() => document.getElementById('key-message').textContent.includes('not accepted')"
    )
    page.fill("#key-input", secret)
    page.click("#key-form button")
    page.wait_for_selector(f"#model option[value='{live_server.model}']", state="attached")
    assert page.evaluate("() => sessionStorage.getItem('vas.apiKey')") == secret

    clip = write_video(tmp_path / "authed.mp4", seconds=3.0, fps=15, width=96, height=64)
    page.select_option("#model", live_server.model)
    page.set_input_files("#file", str(clip))
    page.fill("input[name=segment_seconds]", "1")
    page.click("#submit")
    job_id = page.wait_for_selector("#upload-status a", timeout=30_000).inner_text()
    page.locator(f"#jobs tr[data-job='{job_id}'] .status.succeeded").wait_for(timeout=120_000)

    page.goto(f"{live_server.base}/jobs/{job_id}")  # same tab: the key is still there
    page.wait_for_selector("body[data-ready=true]", timeout=60_000)
    assert page.locator("#key-dialog").is_hidden()
    assert page.evaluate("() => document.getElementById('video').src").startswith("blob:")
    assert page.evaluate("() => document.getElementById('video').textTracks[0].cues.length") == 3
    page.wait_for_function("() => document.getElementById('video').readyState >= 1", timeout=20_000)
    assert page.locator("#timeline .seg").count() == 3
    assert not page.console_errors, page.console_errors
