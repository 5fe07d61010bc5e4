"""A job's decode children started on their parts of the plan (``decode_children``): shared
by the engine and by the CLI's early start (``early_decode``), which plans and starts them
before torch is even imported."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from app.analysis.decode_sandbox import DecodeSandbox

if TYPE_CHECKING:
    from app.analysis.decode_split import DecodePart
    from app.analysis.limits import MediaLimits
    from app.analysis.sandbox_spares import SpareChildren
    from app.analysis.scan import VideoScan


def start_parts(
    sandbox: DecodeSandbox,
    video_path: Path,
    allowed_formats: Sequence[str],
    media_limits: MediaLimits,
    *,
    threads: int,
    scan: VideoScan,
    parts: Sequence[DecodePart],
    fast: bool,
    spares: SpareChildren | None,
) -> list[DecodeSandbox]:
    """``sandbox`` decodes the first of the plan's ``parts`` (``decode_split.split_plan``); one
    more child for each other part (same settings, a share of the queue, a spare where one
    waits), given the scan."""
    sandbox.decode(parts[0].plan, skip_nonref=fast, start_pts=parts[0].start_pts)
    limits = replace(sandbox.limits, queue_bytes=sandbox.limits.queue_bytes // len(parts))
    started = [sandbox]
    try:
        for part in parts[1:]:
            child = DecodeSandbox(
                video_path,
                allowed_formats,
                media_limits,
                sandbox.prep,
                sandbox.frames,
                threads=threads,
                limits=limits,
                scan=scan,
                spare=spares.take() if spares is not None else None,
            )
            started.append(child)
            child.decode(part.plan, skip_nonref=fast, start_pts=part.start_pts)
    except BaseException:
        for child in started[1:]:
            child.close()
        raise
    return started
