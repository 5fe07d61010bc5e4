"""Open uploads safely and describe them. PyAV is imported lazily so the API stays light.

FFmpeg picks a demuxer from the file's content, and some demuxers (concat, HLS,
image sequences) open *other* files named inside the upload. Every open goes
through ``open_container``: a refusal of text files (playlists, concat scripts, SDP)
before FFmpeg sees them, a demuxer allow-list (``format_whitelist``), the ``file``
protocol only, and the media limits of ``app.analysis.limits`` (stream count, frame
size on every decoder), so the worker's decode pass is bounded the same way.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.analysis.limits import (
    DEFAULT_LIMITS,
    MediaLimits,
    check_decode_error,
    check_duration,
    check_frame_size,
    check_streams,
    decoder_options,
    demuxer_options,
    guard_container,
)
from app.domain import VideoInfo
from app.errors import FormatNotAllowed, NoVideoStream, UnsupportedMedia

if TYPE_CHECKING:
    from av.container import InputContainer

_PLAYLIST_MAGIC = (b"ffconcat", b"#EXTM3U", b"#EXT-X-", b"<?xml", b"<MPD", b"[playlist]")
_TEXT_BYTES = frozenset(range(0x20, 0x7F)) | frozenset(b"\t\r\n\f")
_SNIFF_BYTES = 4096


def _looks_like_playlist(head: bytes) -> bool:
    head = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return any(head.startswith(magic) for magic in _PLAYLIST_MAGIC)


def _looks_like_text(head: bytes) -> bool:
    """Every video container starts with binary bytes; text-based demuxers (playlists,
    concat scripts, SDP, subtitles, tty) are the ones that reach out to other files."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multi-byte character cut at the sniff boundary
        if exc.start < len(head) - 4:
            return False
        text = head[: exc.start].decode("utf-8")
    return bool(text) and all(ord(ch) >= 0x80 or ord(ch) in _TEXT_BYTES for ch in text)


def open_container(
    path: Path, allowed_formats: Iterable[str], limits: MediaLimits = DEFAULT_LIMITS
) -> InputContainer:
    """Open ``path`` for reading with the demuxer allow-list and the media limits;
    raises UnsupportedMedia (FormatNotAllowed) or a MediaLimitExceeded error."""
    import av

    with path.open("rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if _looks_like_playlist(head):
        raise UnsupportedMedia("playlists and concat scripts are not accepted; upload the video itself")
    if _looks_like_text(head):
        raise UnsupportedMedia("the file is text, not a video")
    allowed = ",".join(allowed_formats)
    options = {"format_whitelist": allowed, "protocol_whitelist": "file", **demuxer_options(limits)}
    try:
        container = av.open(
            str(path),
            mode="r",
            options=decoder_options(limits),
            container_options=options,
            metadata_errors="ignore",
        )
    except av.ArgumentError as exc:
        if exc.errno != errno.EINVAL:
            raise UnsupportedMedia(f"not a readable video container ({exc.__class__.__name__})") from exc
        raise FormatNotAllowed(f"the container format is not one of: {allowed.replace(',', ', ')}") from exc
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise UnsupportedMedia(f"not a readable video container ({exc.__class__.__name__})") from exc
    try:
        guard_container(container, limits)
    except BaseException:
        container.close()
        raise
    return container


def probe_video(
    path: Path, *, filename: str, allowed_formats: Iterable[str], limits: MediaLimits = DEFAULT_LIMITS
) -> VideoInfo:
    """Describe the first video stream; decodes one frame to prove it is decodable.
    Enforces the media limits (streams, frame size, declared duration) on the way."""
    import av

    with open_container(path, allowed_formats, limits) as container:
        if not container.streams.video:
            raise NoVideoStream("the file has no video stream")
        stream = container.streams.video[0]
        duration = _duration_seconds(container, stream)
        check_duration(duration, limits)
        try:
            first: Any = next(iter(container.decode(stream)), None)
        except (av.FFmpegError, ValueError) as exc:
            check_decode_error(stream.codec_context, exc, limits)
            raise UnsupportedMedia(f"the video stream cannot be decoded ({exc.__class__.__name__})") from exc
        if first is None:
            raise UnsupportedMedia("the video stream has no decodable frames")
        check_streams(len(container.streams), limits)  # streams found while decoding
        check_frame_size(int(first.width), int(first.height), limits)
        rotation = int(getattr(first, "rotation", 0) or 0) % 360
        ctx = stream.codec_context
        fps = float(stream.average_rate) if stream.average_rate else None
        return VideoInfo(
            filename=filename,
            size_bytes=path.stat().st_size,
            duration=duration,
            width=int(ctx.width or first.width),
            height=int(ctx.height or first.height),
            fps=fps,
            codec=str(ctx.name),
            rotation=rotation,
            container=str(container.format.name),
        )


def _duration_seconds(container: Any, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration) / 1_000_000
    return None
