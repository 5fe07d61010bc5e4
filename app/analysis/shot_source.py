"""The clip source of ``segmentation=shots``: one decode pass, segments planned shot by shot.

The decoder (the sandboxed child, ``shot_child``, or this process) converts the grid frames
and feeds every frame, small, to ``StreamingShots``; whenever shots become final, this
source plans them (``ShotPlanner``), tells the task its new segments (``on_plan``, before
any of their clips exists) and the decoder their clips, whose frames it holds. Once the
decoder has sent its last frame the detector finishes, the last shots are planned, and the
decoder is told there is no more (``end``), so it sends its statistics and the source is
exhausted.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from app.analysis.clip_sources import InProcessSource, PreparedClip, SandboxClips
from app.analysis.clip_views import array_views
from app.analysis.decode import DecodedClip, DecodeStats, decode_clips
from app.analysis.exact_time import scan_timeline
from app.analysis.grid_store import ShotClip, ShotClipQueue
from app.analysis.plan import SegmentPlan, model_clip_seconds
from app.analysis.prep import FramePrep
from app.analysis.segmenting import exact_range
from app.analysis.shot_frames import SmallFrames
from app.analysis.shot_plan import ShotPlanner, grid_frames, grid_plan
from app.errors import NoFrames

if TYPE_CHECKING:
    from pathlib import Path

    from app.analysis.decode_sandbox import DecodeSandbox, SandboxLimits
    from app.analysis.limits import MediaLimits
    from app.analysis.scan import VideoScan
    from app.analysis.shot_stream import StreamingShots
    from app.analysis.spec import ModelSpec
    from app.options import JobOptions

log = logging.getLogger(__name__)
PlanSink = Callable[[tuple[SegmentPlan, ...], bool], None]
"""Gets newly planned segments, and whether the plan is complete (``AnalysisTask.grow``)."""


class ShotFeed:
    """Final shots -> segments -> (the task, the decoder): the part both sources share."""

    def __init__(self, runner: StreamingShots, planner: ShotPlanner) -> None:
        self.runner, self.planner = runner, planner
        self.on_plan: PlanSink | None = None
        self.planned = 0
        """Shots planned so far."""
        self.ended = False

    def advance(self, send: Callable[[list[ShotClip], int], None]) -> bool:
        """Plan the shots that became final; True once the last one is planned."""
        if self.ended:
            return True
        shots = self.runner.shots()
        last = self.runner.ended
        if len(shots) <= self.planned and not last:
            return False
        segments = self.planner.plan(shots[self.planned :], last=last)
        self.planned = len(shots)
        if self.on_plan is None:
            raise RuntimeError("the shot source is not bound to its task")
        self.on_plan(segments, last)
        send(
            [ShotClip(c.segment, c.index, c.frames) for s in segments for c in s.clips],
            self.planner.keep_from,
        )
        self.ended = last
        return last


class ShotPlanClips:
    """Clips from a decode child in shots mode (``DecodeSandbox.decode_shots``)."""

    def __init__(
        self, clips: SandboxClips, sandbox: DecodeSandbox, runner: StreamingShots, planner: ShotPlanner
    ) -> None:
        self.clips, self.sandbox, self.runner = clips, sandbox, runner
        self.feed = ShotFeed(runner, planner)

    @property
    def exhausted(self) -> bool:
        return self.clips.exhausted

    @property
    def stats(self) -> DecodeStats | None:
        return self.clips.stats

    def take(self) -> PreparedClip | None:
        clip = self.clips.take()
        if not self.clips.exhausted and not self.feed.ended and self.feed.advance(self.sandbox.send_shot):
            self.sandbox.end_shots()
        return clip

    def waitables(self) -> list[Any]:
        waiting = self.clips.waitables()
        return waiting if self.feed.ended or not waiting else [*waiting, self.runner.waitable()]

    def charge(self, seconds: float) -> None:
        self.clips.charge(seconds)

    def close(self) -> None:
        self.clips.close()
        self.runner.close()
        self.runner.release()


class InProcessShotClips(InProcessSource):
    """Shots mode decoded in this process (``decode_in_subprocess`` off). ``take`` blocks
    until a clip is ready (for the last shots, until the detector has finished)."""

    def __init__(
        self,
        grid: Generator[DecodedClip[np.ndarray], None, None],
        small: SmallFrames,
        runner: StreamingShots,
        planner: ShotPlanner,
        prep: FramePrep,
        frames: int,
        alpha: int | None,
        stats: DecodeStats,
        *,
        duration: float,
        memory_bytes: int,
    ) -> None:
        super().__init__(stats)
        self.grid, self.small, self.runner = grid, small, runner
        self.feed = ShotFeed(runner, planner)
        self.prep, self.frames, self.alpha = prep, frames, alpha
        self.duration = duration
        self.queue = ShotClipQueue(memory_bytes)
        self._out: deque[PreparedClip] = deque()
        self._decoded = False

    def take(self) -> PreparedClip | None:
        while not self._out and not self._exhausted:
            self._step()
        return self._out.popleft() if self._out else None

    def _step(self) -> None:
        if not self._decoded:
            try:
                clip = next(self.grid)
            except StopIteration:
                self.small.flush()
                self.runner.end(self.duration)
                self._decoded = True
            else:
                self.queue.add(clip.plan.frames[0], clip.frames[0], clip.times[0])
        elif not self.runner.ended:
            self.runner.finish(self.duration)
        ended = self.feed.advance(self.queue.plan)
        self._emit()
        if ended and not self.queue.waiting and not self._out:
            self._exhausted = True

    def _emit(self) -> None:
        for clip, frames, times in self.queue.ready(decoded_all=self._decoded):
            views = np.empty(self.prep.clip_shape(self.frames), dtype=np.float32)
            self.prep.write_views(frames, views)
            self._out.append(PreparedClip(clip.segment, times, array_views(views, self.alpha)))

    def close(self) -> None:
        self.grid.close()
        self.queue.close()
        self.runner.close()
        self.runner.release()


class Engine(Protocol):
    """What of the ``Analyzer`` the decode pass needs."""

    allowed_formats: list[str]
    limits: MediaLimits
    decode_threads: int
    max_segments: int
    sandbox: SandboxLimits | None


def start_shot_decode(
    sandbox: DecodeSandbox | None,
    video_path: Path,
    engine: Engine,
    spec: ModelSpec,
    options: JobOptions,
    scan: VideoScan,
    runner: StreamingShots,
) -> ShotPlanClips | InProcessShotClips:
    """Start the one decode pass of a shots job (in ``sandbox``, else here); bind the
    result's ``feed.on_plan`` to the task before taking clips. Grid frames beyond the
    decode queue's size (``decode_queue_bytes``) wait on disk (``grid_store``)."""
    from app.analysis.decode_sandbox import SandboxLimits

    memory_bytes = (engine.sandbox or SandboxLimits()).queue_bytes
    times, duration = scan_timeline(scan)
    if not times:
        raise NoFrames("the video stream has no frames")
    exact_range(duration, start=options.start, end=options.end)  # NoFrames when empty
    clip_seconds = model_clip_seconds(spec)
    grid = grid_frames(times, clip_seconds / spec.frames)
    planner = ShotPlanner(
        times,
        duration,
        grid,
        frames=spec.frames,
        clip_seconds=clip_seconds,
        clips_per_segment=options.clips_per_segment,
        max_segment_seconds=options.max_segment_seconds,
        start=options.start,
        end=options.end,
        limit=engine.max_segments,
    )
    run = grid_plan(times, duration, grid)
    if sandbox is not None:
        sandbox.decode_shots(run, memory_bytes, runner.add, lambda: runner.end(scan.duration))
        return ShotPlanClips(SandboxClips([sandbox], spec.alpha), sandbox, runner, planner)
    prep = FramePrep.for_spec(spec, options.crops)
    stats = DecodeStats()
    small = SmallFrames(scan, runner.add)
    clips = decode_clips(
        video_path,
        engine.allowed_formats,
        scan,
        run,
        prep.prepare_frame,
        threads=engine.decode_threads,
        stats=stats,
        limits=engine.limits,
        on_frame=small.add,
    )
    return InProcessShotClips(
        clips,
        small,
        runner,
        planner,
        prep,
        spec.frames,
        spec.alpha,
        stats,
        duration=scan.duration,
        memory_bytes=memory_bytes,
    )
