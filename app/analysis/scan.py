"""Frame presentation times from a demux-only pass (no decoding), the input of the plan.

Times are seconds from the video stream's start (``stream.start_time`` -> 0), exactly the
clock PyTorchVideo's ``EncodedVideoPyAV`` uses. Packets without a pts (some raw and
AVI streams) force a decode pass instead; frames without a pts get ``i / fps``.

The same pass notes which frames the container marks as keyframes (random-access points):
where a second decode child may start (``decode_split``). A scan that had to decode knows
none, so such a video is decoded in one pass.

``packet_times`` says whether a packet's pts is the presentation time of the picture it
carries, which matching packets to planned frames (the exact skip of ``decode``, the
split) relies on. Not in AVI: it stores no presentation times (FFmpeg's parser derives
them), and with DivX/Xvid "packed B-frames" a packet carries another frame's picture.
"""

from __future__ import annotations

import logging
import statistics
from bisect import bisect_left
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.analysis.limits import DEFAULT_LIMITS, MediaLimits, check_decode_error, check_duration
from app.errors import FormatNotAllowed, NoFrames, UnsupportedMedia, VideoUnreadable

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from av.container import InputContainer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoScan:
    frame_times: tuple[float, ...]
    frame_pts: tuple[int | None, ...]
    """Parallel to ``frame_times``; None when the stream carries no timestamps."""
    duration: float
    width: int
    height: int
    fps: float | None
    codec: str
    pix_fmt: str | None
    time_base: Fraction
    start_pts: int
    source: str
    """"packets" (demux only) or "frames" (had to decode)."""
    keyframes: tuple[int, ...] = ()
    """Indices (into ``frame_times``) of the frames whose packets are keyframes, ascending."""
    container: str = ""
    """The demuxer's name (``"mov,mp4,m4a,3gp,3g2,mj2"``, ``"matroska,webm"``, ``"avi"``)."""

    @property
    def packet_times(self) -> bool:
        """Whether each packet's pts is that of the picture it carries (module doc)."""
        return self.source == "packets" and "avi" not in self.container.split(",")


def open_video(
    path: Path, allowed_formats: Iterable[str], limits: MediaLimits = DEFAULT_LIMITS
) -> InputContainer:
    """probe.open_container (allow-list, media limits); an unreadable file is VideoUnreadable."""
    from app.analysis.probe import open_container

    try:
        return open_container(path, allowed_formats, limits)
    except FormatNotAllowed:
        raise
    except UnsupportedMedia as exc:
        raise VideoUnreadable(exc.detail) from exc


def pts_to_seconds(pts: int, start_pts: int, time_base: Fraction) -> float:
    return float((pts - start_pts) * time_base)


def scan_video(path: Path, allowed_formats: Iterable[str], limits: MediaLimits = DEFAULT_LIMITS) -> VideoScan:
    """List every video frame's presentation time without decoding (falls back to decoding).
    A video longer than ``limits.max_duration_seconds`` is refused before any decoding."""
    import av

    with open_video(path, allowed_formats, limits) as container:
        if not container.streams.video:
            raise NoFrames("the file has no video stream")
        stream = container.streams.video[0]
        pts: list[int] = []
        keys: list[int] = []
        complete = True
        try:
            for packet in container.demux(stream):
                if packet.size == 0 or packet.is_discard:
                    continue
                if packet.pts is None:
                    complete = False
                    break
                pts.append(int(packet.pts))
                if packet.is_keyframe:
                    keys.append(int(packet.pts))
        except (av.FFmpegError, ValueError) as exc:
            log.warning("demux stopped early in %s: %s", path.name, exc)
        if complete:
            ordered = sorted(pts)
            scan = _describe(container, stream, ordered, "packets", _keyframe_indices(ordered, keys))
        else:
            scan = _describe(container, stream, _decoded_pts(path, allowed_formats, limits), "frames")
    check_duration(scan.duration, limits)
    return scan


def _decoded_pts(path: Path, allowed_formats: Iterable[str], limits: MediaLimits) -> Sequence[int | None]:
    import av

    found: list[int | None] = []
    with open_video(path, allowed_formats, limits) as container:
        stream = container.streams.video[0]
        try:
            for packet in container.demux(stream):
                try:
                    found.extend(None if f.pts is None else int(f.pts) for f in packet.decode())
                except (av.FFmpegError, ValueError) as exc:
                    check_decode_error(stream.codec_context, exc, limits)
                    continue
        except (av.FFmpegError, ValueError) as exc:
            log.warning("demux stopped early in %s: %s", path.name, exc)
    known = [p for p in found if p is not None]
    if len(known) == len(found):
        return sorted(known)
    return [None] * len(found)


def _keyframe_indices(ordered: Sequence[int], keys: Sequence[int]) -> tuple[int, ...]:
    """Where each keyframe pts sits in the sorted pts (its first occurrence)."""
    return tuple(sorted({bisect_left(ordered, key) for key in keys}))


def _describe(
    container: Any, stream: Any, pts: Sequence[int | None], source: str, keyframes: tuple[int, ...] = ()
) -> VideoScan:
    if not pts:
        raise NoFrames("the video stream has no frames")
    time_base = Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000)
    fps = float(stream.average_rate) if stream.average_rate else None
    known = [p for p in pts if p is not None]
    if len(known) == len(pts):
        start = int(stream.start_time) if stream.start_time is not None else min(known)
        times = [pts_to_seconds(p, start, time_base) for p in known]
    else:
        start, rate = 0, fps or 25.0
        times = [i / rate for i in range(len(pts))]
    deltas = [b - a for a, b in zip(times[-64:], times[-63:], strict=False) if b > a]
    step = statistics.median(deltas) if deltas else (1.0 / fps if fps else 0.0)
    duration = times[-1] + step
    if stream.duration is not None:
        duration = max(duration, float(stream.duration * time_base))
    ctx = stream.codec_context
    return VideoScan(
        frame_times=tuple(times),
        frame_pts=tuple(pts),
        duration=max(duration, 1e-3),
        width=int(ctx.width or 0),
        height=int(ctx.height or 0),
        fps=fps,
        codec=str(ctx.name),
        pix_fmt=str(ctx.pix_fmt) if ctx.pix_fmt else None,
        time_base=time_base,
        start_pts=start,
        source=source,
        keyframes=keyframes,
        container=str(container.format.name),
    )
