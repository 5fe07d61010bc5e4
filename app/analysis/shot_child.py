"""The decode child's pass for ``segmentation=shots``: one pass, clips planned while it runs.

The child decodes every frame once: each goes, at 48x27, to the parent's shot detector
(``("frames", ...)``, as with ``detect_shots``), and the frames of the grid (``shot_plan``)
are converted as clip frames are and kept (``grid_store``). The parent sends each shot's
clips once the shot is final; the child reads its socket between frames, so clips of early
shots reach the model while later ones are still being decoded:

    parent -> child   ("shots", grid SamplingPlan, memory bytes)    (instead of "plan")
    child  -> parent  ("frames", uint8 (n, 27, 48, 3), times)  ... every decoded frame
    parent -> child   ("shot", (ShotClip, ...), keep_from)      ... as shots become final
    child  -> parent  ("clip", slot, segment, index, times)     ... as in a fixed pass
    parent -> child   ("free", slot)
    child  -> parent  ("decoded",)                              every frame sent
    parent -> child   ("end",)                                  every shot sent
    child  -> parent  ("done", DecodeStats)

No torch here (``sandbox_child`` runs it).
"""

from __future__ import annotations

from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from app.analysis.child_decode import config_clips, send_clip, small_frames
from app.analysis.grid_store import ShotClipQueue

if TYPE_CHECKING:
    from app.analysis.plan import SamplingPlan
    from app.analysis.sandbox_protocol import ChildConfig
    from app.analysis.scan import VideoScan
    from app.analysis.shm import SlotRing


class _Stop(Exception):
    """The parent said stop (or went away)."""


class _Child:
    def __init__(self, conn: Connection, config: ChildConfig, ring: SlotRing, memory_bytes: int) -> None:
        self.conn, self.config, self.ring = conn, config, ring
        self.free = list(range(config.slots))
        self.queue = ShotClipQueue(memory_bytes)
        self.ended = False

    def receive(self, block: bool) -> None:
        """Handle the parent's messages: those waiting (and one at least when ``block``)."""
        while block or self.conn.poll():
            block = False
            message: tuple[Any, ...] = self.conn.recv()
            if message[0] == "free":
                self.free.append(message[1])
            elif message[0] == "shot":
                self.queue.plan(message[1], message[2])
            elif message[0] == "end":
                self.ended = True
            else:
                raise _Stop

    def send_ready(self, decoded_all: bool) -> None:
        for clip, frames, times in self.queue.ready(decoded_all=decoded_all):
            while not self.free:
                self.receive(block=True)
            send_clip(
                self.conn, self.config, self.ring, self.free.pop(), frames, clip.segment, clip.index, times
            )


def serve_shots(
    conn: Connection,
    config: ChildConfig,
    ring: SlotRing,
    scan: VideoScan,
    grid: SamplingPlan,
    memory_bytes: int,
) -> None:
    """Decode every frame once; send shots' clips as the parent plans them (see the module)."""
    from app.analysis.decode import DecodeStats

    child = _Child(conn, config, ring, memory_bytes)
    stats = DecodeStats()
    small = small_frames(conn, scan)
    try:
        clips = config_clips(config, scan, grid, stats, on_frame=small.add)
        for clip in clips:
            child.queue.add(clip.plan.frames[0], clip.frames[0], clip.times[0])
            child.receive(block=False)
            child.send_ready(decoded_all=False)
        small.flush()
        conn.send(("decoded",))
        while not child.ended:
            child.receive(block=True)
            child.send_ready(decoded_all=True)
        child.send_ready(decoded_all=True)
    except _Stop:
        return
    finally:
        child.queue.close()
    conn.send(("done", stats))
