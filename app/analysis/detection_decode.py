"""The decode side of a detection job: the scan, then one pass over the keyframes' clips.

Sandboxed by default (``DecodeSandbox``: the slot size of ``DetectionPrep`` needs the frame
size, so a first child scans and a second, given the scan, decodes), or in this process.
Either way the caller gets ``(keyframe index, clip, keyframe)`` in decode order and a
function that stops the decoder and returns its statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from app.analysis.decode import DecodeStats, decode_clips
from app.analysis.detection_plan import KeyframePlan
from app.analysis.detection_prep import DetectionPrep
from app.analysis.prep import FramePrep
from app.analysis.scan import VideoScan, scan_video

if TYPE_CHECKING:
    from app.analysis.decode_sandbox import DecodeSandbox, SandboxLimits
    from app.analysis.limits import MediaLimits
    from app.analysis.spec import ModelSpec

Clips = Iterator[tuple[int, np.ndarray, np.ndarray]]


def scan_for_detection(
    path: Path, formats: tuple[str, ...], limits: MediaLimits, sandbox: SandboxLimits | None
) -> VideoScan:
    """The video's frame times, from a sandboxed child unless ``sandbox`` is None."""
    if sandbox is None:
        return scan_video(path, formats, limits)
    from app.analysis.decode_sandbox import DecodeSandbox

    tiny = FramePrep((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 8, 8)
    with DecodeSandbox(path, formats, limits, tiny, 1, limits=sandbox) as child:
        return child.scan()


def start_detection_decode(
    path: Path,
    formats: tuple[str, ...],
    limits: MediaLimits,
    sandbox: SandboxLimits | None,
    threads: int,
    spec: ModelSpec,
    scan: VideoScan,
    keyframes: KeyframePlan,
) -> tuple[Clips, Callable[[], DecodeStats | None]]:
    """(keyframe index, clip, keyframe) in decode order, and what stops the decoder (its stats)."""
    prep = DetectionPrep.for_video(spec, scan.height, scan.width)
    if sandbox is None:
        return _in_process(path, formats, limits, threads, spec, scan, keyframes, prep)
    from app.analysis.decode_sandbox import DecodeSandbox

    child = DecodeSandbox(
        path, formats, limits, prep, spec.frames, threads=threads, limits=sandbox, scan=scan
    )
    try:
        child.decode(keyframes.plan)
    except BaseException:
        child.close()
        raise
    return _sandboxed(child, prep, spec.frames), lambda: _stop(child)


def _sandboxed(child: DecodeSandbox, prep: DetectionPrep, frames: int) -> Clips:
    while (clip := child.next_clip()) is not None:
        yield (clip.segment, *prep.unpack(clip.views, frames))


def _stop(child: DecodeSandbox) -> DecodeStats | None:
    child.close()
    return child.stats


def _in_process(
    path: Path,
    formats: tuple[str, ...],
    limits: MediaLimits,
    threads: int,
    spec: ModelSpec,
    scan: VideoScan,
    keyframes: KeyframePlan,
    prep: DetectionPrep,
) -> tuple[Clips, Callable[[], DecodeStats | None]]:
    stats = DecodeStats()
    decoded = decode_clips(
        path, formats, scan, keyframes.plan, prep.prepare_frame, threads=threads, stats=stats, limits=limits
    )
    shape = prep.clip_shape(spec.frames)

    def clips() -> Clips:
        for clip in decoded:
            out = np.empty(shape, np.float32)
            prep.write_views(clip.frames, out)
            yield (clip.plan.segment, *prep.unpack(out, spec.frames))

    def stop() -> DecodeStats:
        decoded.close()
        return stats

    return clips(), stop
