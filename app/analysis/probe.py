"""Open uploads safely and describe them. PyAV is imported lazily so the API stays light.

FFmpeg picks a demuxer from the file's content, and some demuxers (concat, HLS,
image sequences) open *other* files named inside the upload. Every open goes
through ``open_container``: a demuxer allow-list (``format_whitelist``), the
``file`` protocol only, and a refusal of text playlists before FFmpeg sees them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.domain import VideoInfo
from app.errors import UnsupportedMedia

if TYPE_CHECKING:
    from av.container import InputContainer

_PLAYLIST_MAGIC = (b"ffconcat", b"#EXTM3U", b"#EXT-X-", b"<?xml", b"<MPD", b"[playlist]")


def _looks_like_playlist(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    return any(head.startswith(magic) for magic in _PLAYLIST_MAGIC)


def open_container(path: Path, allowed_formats: Iterable[str]) -> InputContainer:
    """Open ``path`` for reading with the demuxer allow-list; raises UnsupportedMedia."""
    import av

    if _looks_like_playlist(path):
        raise UnsupportedMedia("playlists and concat scripts are not accepted; upload the video itself")
    options = {"format_whitelist": ",".join(allowed_formats), "protocol_whitelist": "file"}
    try:
        return av.open(str(path), mode="r", container_options=options, metadata_errors="ignore")
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise UnsupportedMedia(f"not a readable video container ({exc.__class__.__name__})") from exc


def probe_video(path: Path, *, filename: str, allowed_formats: Iterable[str]) -> VideoInfo:
    """Describe the first video stream; decodes one frame to prove it is decodable."""
    import av

    with open_container(path, allowed_formats) as container:
        if not container.streams.video:
            raise UnsupportedMedia("the file has no video stream")
        stream = container.streams.video[0]
        try:
            first: Any = next(iter(container.decode(stream)), None)
        except (av.FFmpegError, ValueError) as exc:
            raise UnsupportedMedia(f"the video stream cannot be decoded ({exc.__class__.__name__})") from exc
        if first is None:
            raise UnsupportedMedia("the video stream has no decodable frames")
        rotation = int(getattr(first, "rotation", 0) or 0) % 360
        ctx = stream.codec_context
        duration = _duration_seconds(container, stream)
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
