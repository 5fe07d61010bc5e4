"""What the decode child's two passes share (``sandbox_child``'s fixed plan, ``shot_child``'s
shots): decoding with the parent's config, the small frames for the shot detector, and a clip
handed over in a shared-memory slot. Imported by the child only (PyAV, numpy; no torch).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app.analysis.decode import DecodedClip, DecodeStats, decode_clips
from app.analysis.shot_frames import SmallFrames

if TYPE_CHECKING:
    from app.analysis.plan import SamplingPlan
    from app.analysis.sandbox_protocol import ChildConfig
    from app.analysis.scan import VideoScan
    from app.analysis.shm import SlotRing


def config_clips(
    config: ChildConfig,
    scan: VideoScan,
    plan: SamplingPlan,
    stats: DecodeStats,
    *,
    on_frame: Callable[[Any], None] | None,
    skip_nonref: bool = False,
    start_pts: int | None = None,
) -> Generator[DecodedClip[np.ndarray], None, None]:
    """``decode_clips`` of ``plan`` under the config's formats, threads and limits."""
    return decode_clips(
        Path(config.path),
        config.allowed_formats,
        scan,
        plan,
        config.prep.prepare_frame,
        threads=config.threads,
        stats=stats,
        limits=config.limits,
        skip_nonref=skip_nonref,
        start_pts=start_pts,
        on_frame=on_frame,
    )


def small_frames(conn: Connection, scan: VideoScan) -> SmallFrames:
    """Every decoded frame, small, to the parent's shot detector (``("frames", ...)``)."""
    return SmallFrames(scan, lambda frames, times: conn.send(("frames", frames, times)))


def send_clip(
    conn: Connection,
    config: ChildConfig,
    ring: SlotRing,
    slot: int,
    frames: list[np.ndarray],
    segment: int,
    index: int,
    times: list[float],
) -> None:
    """Write clip ``index`` of ``segment`` (its prepared ``frames``, shown at ``times``) into
    free ``slot`` as model-ready views, and tell the parent."""
    out = ring.array(slot, config.prep.clip_shape(config.frames))
    config.prep.write_views(frames, out)
    del out  # no view of the ring may outlive the write (``SlotRing.close``)
    conn.send(("clip", slot, segment, index, times))
