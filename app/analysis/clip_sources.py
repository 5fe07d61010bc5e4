"""Where a task's clips come from: sandboxed decode children (one, or several each taking a
part of the video), or this process.

Either way a source hands out ``PreparedClip``s (model-ready views of one clip) without
blocking for long, so the ``Scheduler`` can interleave several jobs' sources and their
inference; ``waitables`` tell it what to sleep on when no source has a clip ready.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from app.analysis.clip_views import ClipInput, array_views
from app.analysis.decode import DecodeStats
from app.analysis.heap import TRIM_EVERY, trim

if TYPE_CHECKING:
    from pathlib import Path

    import torch

    from app.analysis.decode import DecodedClip
    from app.analysis.decode_sandbox import DecodeSandbox, SandboxClip
    from app.analysis.limits import MediaLimits
    from app.analysis.plan import SamplingPlan
    from app.analysis.scan import VideoScan
    from app.analysis.shot_runner import ShotRunner
    from app.analysis.spec import ModelSpec
    from app.analysis.transforms import ClipTransform


@dataclass(frozen=True)
class PreparedClip:
    segment: int
    times: list[float]
    views: list[ClipInput]


class ClipSource(Protocol):
    """Where a task's clips come from. ``take`` never blocks for long; ``waitables`` are
    what to ``multiprocessing.connection.wait`` on (none: ``take`` always makes progress)."""

    @property
    def exhausted(self) -> bool: ...

    @property
    def stats(self) -> DecodeStats | None: ...

    def take(self) -> PreparedClip | None: ...

    def waitables(self) -> list[Any]: ...

    def charge(self, seconds: float) -> None: ...

    def close(self) -> None: ...


class SandboxClips:
    """Clips from one or more decode children, as views (SlowFast inputs packed here).

    Several children decode parts of one plan (``decode_split``), each part whole segments:
    their clips are taken in turn, so each child's ring keeps draining, and every segment's
    clips still arrive in their order."""

    def __init__(self, sandboxes: Sequence[DecodeSandbox], alpha: int | None) -> None:
        if not sandboxes:
            raise ValueError("no decode child")
        self.sandboxes, self.alpha = list(sandboxes), alpha
        self._turn = 0
        self._taken = 0

    @property
    def exhausted(self) -> bool:
        return all(s.exhausted for s in self.sandboxes)

    @property
    def stats(self) -> DecodeStats | None:
        parts = [s.stats for s in self.sandboxes]
        if any(p is None for p in parts):
            return None
        if len(parts) == 1:
            return parts[0]
        return DecodeStats.merged([p for p in parts if p is not None])

    def take(self) -> PreparedClip | None:
        count = len(self.sandboxes)
        for k in range(count):
            sandbox = self.sandboxes[(self._turn + k) % count]
            clip = sandbox.take()
            if clip is not None:
                self._turn = (self._turn + k + 1) % count
                return self._prepared(clip)
        return None

    def _prepared(self, clip: SandboxClip) -> PreparedClip:
        self._taken += 1
        if self._taken % TRIM_EVERY == 0:  # flat RSS whatever the video's length (``heap``)
            trim()
        return PreparedClip(clip.segment, clip.times, array_views(clip.views, self.alpha))

    def waitables(self) -> list[Any]:
        return [w for s in self.sandboxes for w in s.waitables()]

    def charge(self, seconds: float) -> None:
        for sandbox in self.sandboxes:
            sandbox.charge(seconds)

    def close(self) -> None:
        for sandbox in self.sandboxes:
            sandbox.close()


class InProcessSource:
    """What a source decoding in this process has (``decode_in_subprocess`` off): no child to
    wait on or charge, and its statistics once the decoder has finished."""

    def __init__(self, stats: DecodeStats) -> None:
        self._stats = stats
        self._exhausted = False

    @property
    def exhausted(self) -> bool:
        return self._exhausted

    @property
    def stats(self) -> DecodeStats | None:
        return self._stats if self._exhausted else None

    def waitables(self) -> list[Any]:
        return []

    def charge(self, seconds: float) -> None:
        return None


class InProcessClips(InProcessSource):
    """Clips decoded in this process, one per ``take`` (``decode_in_subprocess`` off: no
    child to start, which suits tests and one-off runs; no sandbox either)."""

    def __init__(
        self,
        clips: Generator[DecodedClip[torch.Tensor], None, None],
        transform: ClipTransform,
        stats: DecodeStats,
    ) -> None:
        super().__init__(stats)
        self.clips, self.transform = clips, transform

    def take(self) -> PreparedClip | None:
        if self._exhausted:
            return None
        try:
            clip = next(self.clips)
        except StopIteration:
            self._exhausted = True
            return None
        return PreparedClip(clip.plan.segment, clip.times, self.transform.views(clip.frames))

    def close(self) -> None:
        self.clips.close()


class ShotClips:
    """A source whose decoder also feeds the shot detector (``detect_shots``): ``flush``
    (the in-process decoder's last, partial batch of small frames) runs once the source is
    exhausted, and ``close`` lets the detector's thread go too."""

    def __init__(
        self, source: ClipSource, shots: ShotRunner, flush: Callable[[], None] | None = None
    ) -> None:
        self.source, self.shots, self._flush = source, shots, flush

    @property
    def exhausted(self) -> bool:
        return self.source.exhausted

    @property
    def stats(self) -> DecodeStats | None:
        return self.source.stats

    def take(self) -> PreparedClip | None:
        clip = self.source.take()
        if self.source.exhausted and self._flush is not None:
            flush, self._flush = self._flush, None
            flush()
        return clip

    def waitables(self) -> list[Any]:
        return self.source.waitables()

    def charge(self, seconds: float) -> None:
        self.source.charge(seconds)

    def close(self) -> None:
        self.source.close()
        self.shots.close()


def in_process_source(
    video_path: Path,
    allowed_formats: Sequence[str],
    limits: MediaLimits,
    scan: VideoScan,
    plan: SamplingPlan,
    spec: ModelSpec,
    crops: int,
    threads: int,
    fast: bool,
    shots: ShotRunner | None,
) -> ClipSource:
    """The plan's clips decoded here (``decode_in_subprocess`` off), with ``threads`` and
    ``limits`` (``fast``: non-reference frames skipped); with ``shots``, every frame also goes,
    small, to the shot detector."""
    from app.analysis.decode import decode_clips
    from app.analysis.shot_frames import SmallFrames
    from app.analysis.transforms import ClipTransform

    small = SmallFrames(scan, shots.add) if shots is not None else None
    transform = ClipTransform.for_spec(spec, crops)
    stats = DecodeStats()
    clips = decode_clips(
        video_path,
        allowed_formats,
        scan,
        plan,
        transform.prepare_frame,
        threads=threads,
        stats=stats,
        limits=limits,
        skip_nonref=fast,
        on_frame=small.add if small is not None else None,
    )
    source = InProcessClips(clips, transform, stats)
    if shots is not None and small is not None:
        return ShotClips(source, shots, small.flush)
    return source
