"""Several decode children (``decode_children``) give a job exactly what one child gives:
the same views through the shared-memory rings, and the same result through the engine."""

from __future__ import annotations

from multiprocessing.connection import wait
from pathlib import Path

import numpy as np
import pytest

from app.analysis.clip_sources import SandboxClips
from app.analysis.decode_sandbox import DecodeSandbox
from app.analysis.decode_split import split_plan
from app.analysis.engine import Analyzer
from app.analysis.limits import DEFAULT_LIMITS
from app.analysis.plan import make_plan
from app.analysis.prep import FramePrep
from app.options import JobOptions
from app.settings import Settings
from tests.media import write_video

ALLOWED = Settings().allowed_format_list
PREP = FramePrep((0.45, 0.45, 0.45), (0.225, 0.225, 0.225), short_side=40, crop=32)
FRAMES = 6


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 s of H.264 with B-frames and a keyframe every 2 s: two parts of ~12 s."""
    folder = tmp_path_factory.mktemp("children")
    options = {"bf": "3", "g": "60", "keyint_min": "60", "sc_threshold": "0"}
    return write_video(folder / "long.mp4", seconds=24, fps=30, width=96, height=64, options=options)


def drain(source: SandboxClips) -> dict[int, list[tuple[list[float], np.ndarray]]]:
    """Every clip, by segment, in the order it came."""
    out: dict[int, list[tuple[list[float], np.ndarray]]] = {}
    while not source.exhausted:
        clip = source.take()
        if clip is None:
            wait(source.waitables(), timeout=5.0)
            continue
        views = np.stack([np.asarray(v) for v in clip.views])
        out.setdefault(clip.segment, []).append((clip.times, views))
    return out


def children_clips(video: Path, parts: int) -> tuple[dict[int, list[tuple[list[float], np.ndarray]]], int]:
    first = DecodeSandbox(video, ALLOWED, DEFAULT_LIMITS, PREP, FRAMES)
    sandboxes = [first]
    try:
        scan = first.scan()
        plan = make_plan(
            scan.frame_times,
            scan.duration,
            frames=FRAMES,
            clip_seconds=1.0,
            segment_seconds=0.7,
            stride_seconds=0.7,
            clips_per_segment=2,
        )
        cut = split_plan(scan, plan, parts, min_part_seconds=0.0)
        first.decode(cut[0].plan, start_pts=cut[0].start_pts)
        for part in cut[1:]:
            sandboxes.append(DecodeSandbox(video, ALLOWED, DEFAULT_LIMITS, PREP, FRAMES, scan=scan))
            sandboxes[-1].decode(part.plan, start_pts=part.start_pts)
        source = SandboxClips(sandboxes, None)
        clips = drain(source)
        stats = source.stats
        assert stats is not None and stats.substituted == 0
        # A frame two parts' segments share is converted by both children.
        assert stats.converted >= len(plan.needed_frames) and (
            len(cut) > 1 or stats.converted == len(plan.needed_frames)
        )
        assert sorted(clips) == [s.index for s in plan.segments]
        return clips, len(cut)
    finally:
        for sandbox in sandboxes:
            sandbox.close()


def test_two_children_send_the_views_of_one(long_video: Path) -> None:
    one, count = children_clips(long_video, 1)
    two, split = children_clips(long_video, 2)
    assert (count, split) == (1, 2)
    assert sorted(two) == sorted(one)
    for segment, clips in one.items():
        assert [times for times, _ in two[segment]] == [times for times, _ in clips], segment
        for (_, got), (_, want) in zip(two[segment], clips, strict=True):
            assert np.array_equal(got, want), segment


def test_the_setting_reaches_the_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    analyzer = Analyzer.from_settings(Settings(models_dir=tmp_path, decode_children=3))
    assert analyzer.decode_children == 3
    assert Settings().decode_children == 0, "the default is decided by the cores"
    for cores, children in (({0}, 1), ({0, 1}, 2), (set(range(16)), 2)):
        monkeypatch.setattr("os.sched_getaffinity", lambda _pid, cores=cores: cores)
        assert Analyzer.from_settings(Settings(models_dir=tmp_path)).decode_children == children, cores


def test_the_job_result_is_that_of_one_child(zoo_models_dir: Path, long_video: Path) -> None:
    """Through the engine a worker runs: same segments, frame times and scores."""
    results = {}
    for children in (1, 2):
        analyzer = Analyzer.from_settings(Settings(models_dir=zoo_models_dir, decode_children=children))
        task = analyzer.open_task(long_video, "x3d_xs", JobOptions(segment_seconds=2.0))
        try:
            assert isinstance(task.source, SandboxClips)
            assert len(task.source.sandboxes) == children, "24 s cut into two parts of >= 10 s"
            analyzer.scheduler().run([task])
        finally:
            task.close()
        assert task.error is None and task.result is not None
        results[children] = task.result.to_dict()
    one, two = results[1], results[2]
    assert len(one["segments"]) == len(two["segments"]) == 12
    for a, b in zip(one["segments"], two["segments"], strict=True):
        assert (a["start"], a["end"], a["first_frame_time"], a["last_frame_time"]) == (
            b["start"],
            b["end"],
            b["first_frame_time"],
            b["last_frame_time"],
        )
        assert [x["class_id"] for x in a["labels"]] == [x["class_id"] for x in b["labels"]]
        assert [x["score"] for x in a["labels"]] == pytest.approx([x["score"] for x in b["labels"]], abs=1e-6)
    assert one["video"]["substituted_frames"] == two["video"]["substituted_frames"] == 0
