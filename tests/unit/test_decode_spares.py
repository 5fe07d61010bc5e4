"""Decode children started ahead (``sandbox_spares``): a job that takes them gets exactly what
freshly started children give, a spare that died while it waited costs nothing, a worker
refills them between jobs, and ``close`` leaves no process behind."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from app.analysis.clip_sources import SandboxClips
from app.analysis.decode_sandbox import DecodeSandbox
from app.analysis.engine import Analyzer
from app.analysis.limits import DEFAULT_LIMITS
from app.analysis.sandbox_spares import SpareChildren
from app.options import JobOptions
from app.settings import Settings
from tests.unit.test_decode_children import ALLOWED, FRAMES, PREP, drain, long_video  # noqa: F401


def scores(result: dict[str, object]) -> list[tuple[object, ...]]:
    segments = result["segments"]
    assert isinstance(segments, list)
    return [
        (
            s["start"],
            s["end"],
            s["first_frame_time"],
            [(x["class_id"], round(x["score"], 6)) for x in s["labels"]],
        )
        for s in segments
    ]


def run(analyzer: Analyzer, video: Path) -> dict[str, object]:
    task = analyzer.open_task(video, "x3d_xs", JobOptions(segment_seconds=2.0))
    try:
        assert isinstance(task.source, SandboxClips) and len(task.source.sandboxes) == 2
        analyzer.scheduler().run([task])
    finally:
        task.close()
    assert task.error is None and task.result is not None
    return task.result.to_dict()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_job_on_spares_is_a_job_on_fresh_children(zoo_models_dir: Path, long_video: Path) -> None:  # noqa: F811
    fresh = Analyzer.from_settings(Settings(models_dir=zoo_models_dir, decode_children=2))
    assert fresh.spares is not None and fresh.spares.waiting() == 0, "nothing starts before it is asked"
    want = run(fresh, long_video)
    warm = Analyzer.from_settings(Settings(models_dir=zoo_models_dir, decode_children=2))
    assert warm.spares is not None
    warm.refill_spares()
    assert warm.spares.waiting() == 2
    try:
        assert scores(run(warm, long_video)) == scores(want)
        assert warm.spares.waiting() == 0, "both children of the job were spares"
    finally:
        warm.spares.close()


def test_a_spare_that_died_waiting_is_replaced(long_video: Path) -> None:  # noqa: F811
    spares = SpareChildren(1)
    spares.refill()
    spare = spares.take()
    assert spare is not None and spare.alive()
    want = None
    with DecodeSandbox(long_video, ALLOWED, DEFAULT_LIMITS, PREP, FRAMES) as fresh:
        want = fresh.scan()
    os.kill(spare.proc.pid, signal.SIGKILL)
    spare.join(5)
    with DecodeSandbox(long_video, ALLOWED, DEFAULT_LIMITS, PREP, FRAMES, spare=spare) as sandbox:
        assert sandbox.scan() == want
        assert sandbox._child is not spare, "a new child took over"
    spares.close()


def test_a_spare_decodes_through_the_ring_it_is_handed(long_video: Path) -> None:  # noqa: F811
    """The ring's descriptor goes over the socket: the clips match a fresh child's, view for view."""
    clips = {}
    for use_spare in (False, True):
        spares = SpareChildren(1)
        spares.refill()
        spare = spares.take() if use_spare else None
        sandbox = DecodeSandbox(long_video, ALLOWED, DEFAULT_LIMITS, PREP, FRAMES, spare=spare)
        try:
            if use_spare:
                assert sandbox._child is spare
            scan = sandbox.scan()
            from app.analysis.plan import make_plan

            plan = make_plan(
                scan.frame_times,
                scan.duration,
                frames=FRAMES,
                clip_seconds=1.0,
                segment_seconds=3.0,
                stride_seconds=3.0,
            )
            sandbox.decode(plan)
            got = drain(SandboxClips([sandbox], None))
            clips[use_spare] = {k: [(t, v.tobytes()) for t, v in c] for k, c in got.items()}
        finally:
            sandbox.close()
            spares.close()
    assert clips[True] == clips[False] and len(clips[True]) == 8


def test_close_ends_the_spares() -> None:
    spares = SpareChildren(2)
    spares.refill()
    pids = []
    for _ in range(2):
        child = spares.take()
        assert child is not None
        pids.append(child.proc.pid)
        child.close()
    spares.refill(1)
    waiting = spares._spares[0].result()
    spares.close()
    assert not waiting.alive() and not any(alive(p) for p in [*pids, waiting.proc.pid])
    spares.refill()
    assert spares.waiting() == 0, "closed: nothing is started again"


@pytest.mark.parametrize("children", [1, 2])
def test_the_worker_refills_between_jobs(children: int, zoo_models_dir: Path) -> None:
    analyzer = Analyzer.from_settings(Settings(models_dir=zoo_models_dir, decode_children=children))
    assert analyzer.spares is not None
    try:
        analyzer.refill_spares()
        assert analyzer.spares.waiting() == children
    finally:
        analyzer.spares.close()
    in_process = Analyzer.from_settings(Settings(models_dir=zoo_models_dir, decode_in_subprocess=False))
    assert in_process.spares is None
    in_process.refill_spares()  # nothing to start, and no error
