"""Annotated-video renders in a sandboxed child: re-reading an upload must not risk the worker.

``annotate.render`` decodes the stored video again, draws and encodes it; it runs in a
``sandbox_child`` under the decode child's limits, scaled for the extra work of encoding.
The explanation pictures (``explain_pictures``) are drawn the same way, for the same reason.
"""

from __future__ import annotations

import shutil
import uuid
from typing import TYPE_CHECKING, Any

from app.analysis.sandbox_process import SandboxChild, cpu_seconds, one_shot
from app.analysis.sandbox_protocol import RenderConfig

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path

    from app.analysis.decode_sandbox import SandboxLimits
    from app.analysis.limits import MediaLimits

RENDER_COST = 4.0
"""A render decodes and also encodes every frame: its deadline gives it this many times the
decode child's per-video-second allowance (plus the same fixed allowance)."""
RENDER_MIN_MEMORY = 2 * 1024**3
"""Floor of the render child's address space: libx264's threads reserve stacks and lookahead
buffers, and under 512 MiB thread creation already fails (EAGAIN)."""


def render_in_sandbox(
    source: Path,
    target: Path,
    segments: Sequence[dict[str, Any]],
    *,
    duration: float,
    allowed_formats: Iterable[str],
    limits: MediaLimits,
    max_height: int,
    threads: int,
    sandbox: SandboxLimits,
    lines: int | None = 3,
    explanations: Sequence[dict[str, Any]] = (),
    pictures: bool = False,
    detections: Sequence[dict[str, Any]] = (),
) -> int:
    """``annotate.render`` in a spawned child under the decode child's address-space limit (at
    least ``RENDER_MIN_MEMORY``), a CPU-time limit and a wall-clock deadline (``RENDER_COST``):
    a crash, hang or blow-up while re-reading the video fails that render with its code and
    never takes the worker down; its partial file is removed. Returns the frames written.
    ``explanations``: the maps blended on; with ``pictures``, drawn instead as the folder of
    explanation pictures ``target`` (``explain_pictures``), returning how many."""
    allowance = sandbox.timeout_seconds + RENDER_COST * sandbox.timeout_per_video_second * max(duration, 0.0)
    suffix = "part" if pictures else "part.mp4"
    part = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.{suffix}")
    config = RenderConfig(
        source=str(source),
        target=str(target),
        part=str(part),
        segments=tuple(segments),
        allowed_formats=tuple(allowed_formats),
        limits=limits,
        max_height=max_height,
        threads=threads,
        memory_bytes=max(sandbox.memory_bytes, RENDER_MIN_MEMORY) if sandbox.memory_bytes else None,
        cpu_seconds=cpu_seconds(allowance, 5),
        fault=sandbox.fault,
        lines=lines,
        explanations=tuple(explanations),
        detections=tuple(detections),
        pictures=pictures,
    )
    try:
        frames: int = one_shot(SandboxChild(role="the renderer"), config, allowance, "rendered")
    finally:
        if part.is_dir():  # left behind by a child that was killed mid-draw
            shutil.rmtree(part, ignore_errors=True)
        part.unlink(missing_ok=True)  # left behind by a child that was killed mid-encode
    return frames
