"""Grid frames held until their shot is final (``segmentation=shots``), and the clips made of them.

A shot is final only once the detector has seen past its end, and a shot may last the
whole video, so its prepared frames (float32, short side scaled: ~700 kB at X3D-S's size)
cannot all stay in memory. ``GridStore`` keeps the newest up to ``memory_bytes`` and
writes older ones to an unlinked scratch file (``tempfile``: ``TMPDIR``), read back with
``pread`` when their shot's clips are made: memory stays flat for a ten-minute single
shot, and the file's space is reused as shots are done (``release_below``), so the disk
holds at most the frames of the shots not yet final.

``ShotClipQueue`` is the part shared by the decode child and the in-process decoder:
grid frames go in as they are decoded, each final shot's clips (planned by the parent,
``shot_plan``) as they come, and a clip comes out once all its frames are in. numpy only.
"""

from __future__ import annotations

import os
import tempfile
from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO

import numpy as np


class GridStore:
    """Prepared frames by grid index: ``put`` in ascending order, ``get``, ``release_below``."""

    def __init__(self, memory_bytes: int) -> None:
        self.memory_bytes = memory_bytes
        self._memory: OrderedDict[int, tuple[np.ndarray, float]] = OrderedDict()
        self._held = 0
        self._disk: dict[int, tuple[int, tuple[int, ...], float]] = {}
        self._free: dict[int, list[int]] = {}
        self._file: IO[bytes] | None = None
        self._end = 0
        self.spilled = 0
        """Frames written to the scratch file (each at most once)."""

    @property
    def disk_bytes(self) -> int:
        """The scratch file's size: the most frames ever waiting on disk at once."""
        return self._end

    def put(self, index: int, frame: np.ndarray, time: float) -> None:
        frame = np.ascontiguousarray(frame, dtype=np.float32)
        self._memory[index] = (frame, time)
        self._held += frame.nbytes
        while self._held > self.memory_bytes and len(self._memory) > 1:
            self._spill(*self._memory.popitem(last=False))

    def get(self, index: int) -> tuple[np.ndarray, float]:
        if index in self._memory:
            return self._memory[index]
        offset, shape, time = self._disk[index]
        assert self._file is not None
        size = int(np.prod(shape)) * 4
        data = os.pread(self._file.fileno(), size, offset)
        if len(data) != size:
            raise OSError(f"the scratch file gave {len(data)} of {size} bytes")
        return np.frombuffer(data, dtype=np.float32).reshape(shape), time

    def release_below(self, index: int) -> None:
        """Frames before grid index ``index`` will not be asked for again."""
        for key in [k for k in self._memory if k < index]:
            frame, _ = self._memory.pop(key)
            self._held -= frame.nbytes
        for key in [k for k in self._disk if k < index]:
            offset, shape, _ = self._disk.pop(key)
            self._free.setdefault(int(np.prod(shape)) * 4, []).append(offset)

    def close(self) -> None:
        self._memory.clear()
        self._disk.clear()
        if self._file is not None:
            self._file.close()
            self._file = None

    def _spill(self, index: int, entry: tuple[np.ndarray, float]) -> None:
        frame, time = entry
        self._held -= frame.nbytes
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="vas-grid-")  # noqa: SIM115 (closed by close)
        reuse = self._free.get(frame.nbytes)
        if reuse:
            offset = reuse.pop()
        else:
            offset, self._end = self._end, self._end + frame.nbytes
        written = os.pwrite(self._file.fileno(), frame.tobytes(), offset)
        if written != frame.nbytes:
            raise OSError(f"the scratch file took {written} of {frame.nbytes} bytes")
        self._disk[index] = (offset, frame.shape, time)
        self.spilled += 1


@dataclass(frozen=True)
class ShotClip:
    """One clip of a final shot, as the parent planned it: scan frame indices (grid frames)."""

    segment: int
    index: int
    frames: tuple[int, ...]


class ShotClipQueue:
    """Grid frames in (``add``), planned clips in (``plan``), ready clips out (``ready``)."""

    def __init__(self, memory_bytes: int) -> None:
        self.store = GridStore(memory_bytes)
        self.high = -1
        """The last grid frame added."""
        self._queued: deque[tuple[tuple[ShotClip, ...], int]] = deque()

    def add(self, index: int, frame: np.ndarray, time: float) -> None:
        self.store.put(index, frame, time)
        self.high = max(self.high, index)

    def plan(self, clips: Sequence[ShotClip], keep_from: int) -> None:
        """A final shot's clips; after them no clip needs a grid frame before ``keep_from``."""
        self._queued.append((tuple(clips), keep_from))

    @property
    def waiting(self) -> bool:
        return bool(self._queued)

    def ready(self, *, decoded_all: bool = False) -> Iterator[tuple[ShotClip, list[np.ndarray], list[float]]]:
        """Each queued clip whose frames are all in (all are, once ``decoded_all``), in order."""
        while self._queued:
            clips, keep_from = self._queued[0]
            if not decoded_all and any(max(c.frames) > self.high for c in clips):
                return
            self._queued.popleft()
            for clip in clips:
                got = [self.store.get(i) for i in clip.frames]
                yield clip, [frame for frame, _ in got], [time for _, time in got]
            self.store.release_below(keep_from)

    def close(self) -> None:
        self.store.close()
