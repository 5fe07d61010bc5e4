"""Media limits from settings, each failing with its own code (see ``app.errors``).

They are checked on the container before anything is decoded (``probe.open_container``
applies ``guard_container`` to every open, in the API and in the worker) and on frames
while decoding (``check_frame`` / ``check_duration``, for the decode pass).

FFmpeg cannot be left to enforce two of them by itself:

* ``max_streams`` passed to a demuxer makes it drop further streams *silently*; so the
  demuxer is told to keep one more than the limit (which bounds its memory) and the
  streams are counted here, which detects the over-limit file.
* ``max_pixels`` is a decoder option. Given to ``av.open`` it reaches only the decoders
  that ``avformat_find_stream_info`` opens while probing (which do decode a frame: a
  small PNG can declare 12000x12000 pixels), not the codec contexts PyAV decodes with,
  where it is silently ignored. So it goes to both: ``open_options`` for the probe,
  and ``guard_container`` sets it on every video stream's codec context before that
  decoder opens. A frame over the limit then fails inside FFmpeg before its buffer is
  allocated, as a decode error: ``check_decode_error`` tells that refusal apart from a
  bad packet (which is skipped), so a stream that grows past the limit mid-way (a new
  H.264 SPS, a bigger PNG frame) fails with ``frame_too_large`` instead of being
  analysed up to the switch only.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.errors import FrameTooLarge, TooManyStreams, VideoTooLong

if TYPE_CHECKING:
    from app.settings import Settings


@dataclass(frozen=True)
class MediaLimits:
    max_duration_seconds: float = 4 * 3600.0
    max_frame_pixels: int = 7680 * 4320
    max_streams: int = 32

    @classmethod
    def from_settings(cls, settings: Settings) -> MediaLimits:
        return cls(
            max_duration_seconds=settings.max_duration_seconds,
            max_frame_pixels=settings.max_frame_pixels,
            max_streams=settings.max_streams,
        )


DEFAULT_LIMITS = MediaLimits()


def demuxer_options(limits: MediaLimits) -> dict[str, str]:
    """``av.open(container_options=...)``: keep one stream more than allowed (module doc)."""
    return {"max_streams": str(limits.max_streams + 1)}


def decoder_options(limits: MediaLimits) -> dict[str, str]:
    """``av.open(options=...)`` (the probing decoders) and every codec context."""
    return {"max_pixels": str(limits.max_frame_pixels)}


def check_streams(count: int, limits: MediaLimits) -> None:
    if count > limits.max_streams:
        raise TooManyStreams(
            f"the file has more than {limits.max_streams} streams; the limit is {limits.max_streams}"
        )


def check_frame_size(width: int, height: int, limits: MediaLimits) -> None:
    if width < 0 or height < 0 or width * height > limits.max_frame_pixels:
        raise FrameTooLarge(
            f"frames of {width}x{height} pixels exceed the limit of {limits.max_frame_pixels} pixels"
        )


def check_duration(seconds: float | None, limits: MediaLimits) -> None:
    """``seconds``: a declared duration, or the presentation time of a decoded frame."""
    if seconds is not None and seconds > limits.max_duration_seconds:
        raise VideoTooLong(
            f"the video runs past {seconds:.1f} s; the limit is {limits.max_duration_seconds:g} s"
        )


def check_frame(frame: Any, time_seconds: float | None, limits: MediaLimits) -> None:
    """For the decode pass: one decoded ``av.VideoFrame`` and its time from the start."""
    check_frame_size(int(frame.width), int(frame.height), limits)
    check_duration(time_seconds, limits)


def check_decode_error(ctx: Any, exc: BaseException, limits: MediaLimits) -> None:
    """After the decoder refused a packet: raise FrameTooLarge if the frame-size cap refused it.

    The refusal shows on the codec context in one of two ways: it already carries the new
    size (H.264 takes it from the SPS, then fails to allocate the frame), or, in decoders
    that size frames with ``ff_set_dimensions`` (PNG, MJPEG, ...), the size was refused
    with EINVAL and reset to 0x0. Anything else is a bad packet; the caller decides."""
    width, height = int(ctx.width or 0), int(ctx.height or 0)
    if width * height > limits.max_frame_pixels:
        raise FrameTooLarge(
            f"a frame of {width}x{height} pixels exceeds the limit of {limits.max_frame_pixels} pixels"
        ) from exc
    if getattr(exc, "errno", None) == errno.EINVAL and not (width and height):
        raise FrameTooLarge(
            f"a frame cannot be decoded within the limit of {limits.max_frame_pixels} pixels"
        ) from exc


def guard_container(container: Any, limits: MediaLimits) -> None:
    """Count the streams and cap every video decoder's frame size, before any decoding."""
    check_streams(len(container.streams), limits)
    for stream in container.streams.video:
        ctx = stream.codec_context
        if ctx is None:
            continue
        check_frame_size(int(ctx.width or 0), int(ctx.height or 0), limits)
        ctx.options = {**dict(ctx.options or {}), **decoder_options(limits)}
