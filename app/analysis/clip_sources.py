"""Where a task's clips come from: a sandboxed decode child, or this process.

Either way a source hands out ``PreparedClip``s (model-ready views of one clip) without
blocking for long, so the ``Scheduler`` can interleave several jobs' sources and their
inference; ``waitables`` tell it what to sleep on when no source has a clip ready.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch

from app.analysis.transforms import ClipInput, ClipTransform, pack_pathway

if TYPE_CHECKING:
    from app.analysis.decode import DecodedClip, DecodeStats
    from app.analysis.decode_sandbox import DecodeSandbox


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
    """Clips from a decode child, as torch views (SlowFast inputs packed here)."""

    def __init__(self, sandbox: DecodeSandbox, alpha: int | None) -> None:
        self.sandbox, self.alpha = sandbox, alpha

    @property
    def exhausted(self) -> bool:
        return self.sandbox.exhausted

    @property
    def stats(self) -> DecodeStats | None:
        return self.sandbox.stats

    def take(self) -> PreparedClip | None:
        clip = self.sandbox.take()
        if clip is None:
            return None
        tensor = torch.from_numpy(clip.views)
        views: list[ClipInput] = [
            pack_pathway(tensor[v], self.alpha) if self.alpha else tensor[v] for v in range(tensor.shape[0])
        ]
        return PreparedClip(clip.segment, clip.times, views)

    def waitables(self) -> list[Any]:
        return self.sandbox.waitables()

    def charge(self, seconds: float) -> None:
        self.sandbox.charge(seconds)

    def close(self) -> None:
        self.sandbox.close()


class InProcessClips:
    """Clips decoded in this process, one per ``take`` (``decode_in_subprocess`` off: no
    child to start, which suits tests and one-off runs; no sandbox either)."""

    def __init__(
        self,
        clips: Generator[DecodedClip[torch.Tensor], None, None],
        transform: ClipTransform,
        stats: DecodeStats,
    ) -> None:
        self.clips, self.transform, self._stats = clips, transform, stats
        self._exhausted = False

    @property
    def exhausted(self) -> bool:
        return self._exhausted

    @property
    def stats(self) -> DecodeStats | None:
        return self._stats if self._exhausted else None

    def take(self) -> PreparedClip | None:
        if self._exhausted:
            return None
        try:
            clip = next(self.clips)
        except StopIteration:
            self._exhausted = True
            return None
        return PreparedClip(clip.plan.segment, clip.times, self.transform.views(clip.frames))

    def waitables(self) -> list[Any]:
        return []

    def charge(self, seconds: float) -> None:
        return None

    def close(self) -> None:
        self.clips.close()
