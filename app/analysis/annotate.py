"""The annotated video: the source re-encoded as H.264 MP4 with the current top labels
(a multi-label model's: every kept label) and scores drawn on each frame and a thin timeline bar (top-1 colour per segment, a
playhead) along the bottom edge.

Frames are turned upright (display matrix) and scaled to at most ``max_height``; their
presentation times are kept, so the labels line up with the results' timestamps. The
label shown at time t is the VTT track's cue (the newest segment that has started).
"""

from __future__ import annotations

import colorsys
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from app.analysis.limits import DEFAULT_LIMITS, MediaLimits

TIME_BASE = Fraction(1, 90_000)
BAR_FRACTION = 0.025


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    labels: tuple[tuple[str, int, float], ...]  # (label, class id, score), best first


def cues_from(segments: Sequence[dict[str, Any]], lines: int | None = 3) -> list[Cue]:
    """Same timing as the WebVTT track: overlapping segments hand over at the next start.
    ``lines`` labels a cue at most (None: every kept label, for a multi-label model)."""
    ordered = sorted(segments, key=lambda s: (s["start"], s["index"]))
    out = []
    for i, seg in enumerate(ordered):
        start, end = float(seg["start"]), float(seg["end"])
        if i + 1 < len(ordered) and start < float(ordered[i + 1]["start"]) < end:
            end = float(ordered[i + 1]["start"])
        labels = tuple(
            (str(x["label"]), int(x["class_id"]), float(x["score"])) for x in seg["labels"][:lines]
        )
        out.append(Cue(start, end, labels))
    return out


def colour(class_id: int) -> tuple[int, int, int]:
    """The page's palette: golden-angle hues (``labelColour`` in static/common.js)."""
    r, g, b = colorsys.hls_to_rgb(((class_id * 137.508) % 360) / 360, 0.55, 0.65)
    return round(r * 255), round(g * 255), round(b * 255)


def output_size(width: int, height: int, max_height: int) -> tuple[int, int]:
    """Scaled to at most ``max_height``, aspect kept, both even (yuv420p)."""
    if height > max_height:
        width, height = round(width * max_height / height), max_height
    return max(2, width - width % 2), max(2, height - height % 2)


def percent(score: float) -> str:
    """As the WebVTT cues: whole percent, one decimal below 10%."""
    return f"{100 * score:.0f}%" if score >= 0.1 else f"{100 * score:.1f}%"


class Painter:
    """Draws the label box and the timeline bar on RGB frames of one size."""

    def __init__(self, width: int, height: int, cues: Sequence[Cue], duration: float) -> None:
        self.width, self.height, self.cues = width, height, list(cues)
        self.duration = max(duration, max((c.end for c in cues), default=0.0), 1e-6)
        size = max(10, height // 22)
        try:
            self.font: Any = ImageFont.load_default(size=size)
        except TypeError:  # Pillow without FreeType: the fixed bitmap font
            self.font = ImageFont.load_default()
        self.line = size + max(2, size // 4)
        self.bar_height = max(3, round(height * BAR_FRACTION))
        self.bar = self._timeline()

    def _timeline(self) -> np.ndarray:
        bar = np.full((self.bar_height, self.width, 3), 40, dtype=np.uint8)
        for cue in self.cues:
            if not cue.labels:
                continue
            x0 = int(cue.start / self.duration * self.width)
            x1 = max(x0 + 1, int(cue.end / self.duration * self.width))
            bar[:, x0:x1] = colour(cue.labels[0][1])
        return bar

    def cue_at(self, t: float) -> Cue | None:
        for cue in self.cues:
            if cue.start <= t < cue.end:
                return cue
        return None

    def paint(self, rgb: np.ndarray, t: float) -> np.ndarray:
        out = rgb.copy()
        out[-self.bar_height :] = self.bar
        x = min(self.width - 1, int(t / self.duration * self.width))
        out[-self.bar_height :, max(0, x - 1) : x + 1] = 255
        cue = self.cue_at(t)
        if cue is None or not cue.labels:
            return out
        image = Image.fromarray(out)
        draw = ImageDraw.Draw(image, "RGBA")
        texts = [f"{label}  {percent(score)}" for label, _, score in cue.labels]
        box_w = max(draw.textlength(text, font=self.font) for text in texts) + self.line * 1.4
        pad = self.line // 3
        draw.rectangle((pad, pad, pad + box_w, pad + self.line * len(texts) + pad), fill=(0, 0, 0, 150))
        for i, (text, (_, class_id, _)) in enumerate(zip(texts, cue.labels, strict=True)):
            y = pad * 2 + i * self.line
            swatch = self.line * 0.6
            draw.rectangle((pad * 2, y + 2, pad * 2 + swatch, y + 2 + swatch), fill=colour(class_id))
            draw.text((pad * 2 + self.line, y), text, font=self.font, fill=(255, 255, 255))
        return np.asarray(image)


def render(
    source: Path,
    target: Path,
    segments: Sequence[dict[str, Any]],
    *,
    allowed_formats: Iterable[str],
    max_height: int = 720,
    crf: int = 23,
    threads: int = 0,
    limits: MediaLimits | None = None,
    part: Path | None = None,
    on_frame: Callable[[int], None] | None = None,
    lines: int | None = 3,
    explanations: Sequence[dict[str, Any]] = (),
    detections: Sequence[dict[str, Any]] = (),
) -> int:
    """Write the annotated MP4 via ``part`` (a temp file beside ``target``, renamed into place);
    returns frames written. ``on_frame(written)`` runs after each frame (the sandbox's test hook).
    ``lines``: labels drawn per cue (a classifier's best three; None: all, for multi-label).
    ``explanations`` (the results' maps): blended on under the labels (``overlay=heatmap``).
    ``detections`` (a detection job's people): boxes in track colours with their actions."""
    import av

    from app.analysis.box_overlay import BoxOverlay
    from app.analysis.decode import frame_to_rgb
    from app.analysis.heat_overlay import HeatOverlay
    from app.analysis.scan import open_video

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = part or target.with_name(f".{target.stem}.{os.getpid()}.part.mp4")
    cues = cues_from(segments, lines)
    overlay = HeatOverlay(explanations, segments) if explanations else None
    people = BoxOverlay(detections, colour) if detections else None
    written = 0
    try:
        with open_video(source, allowed_formats, limits or DEFAULT_LIMITS) as reader:
            stream = reader.streams.video[0]
            stream.codec_context.thread_type = "AUTO"
            duration = (
                float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0
            )
            rate = stream.average_rate or Fraction(30)
            with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}) as writer:
                out: Any = None
                painter: Painter | None = None
                start: float | None = None
                last_pts = -1
                for frame in reader.decode(stream):
                    if frame.time is None:
                        continue
                    start = frame.time if start is None else start
                    t = float(frame.time - start)
                    rgb = frame_to_rgb(frame)
                    if out is None:
                        width, height = output_size(rgb.shape[1], rgb.shape[0], max_height)
                        out = writer.add_stream("libx264", rate=rate)
                        out.width, out.height, out.pix_fmt = width, height, "yuv420p"
                        out.codec_context.time_base = TIME_BASE
                        out.options = {"preset": "veryfast", "crf": str(crf), "threads": str(threads)}
                        painter = Painter(width, height, cues, duration)
                    assert painter is not None
                    pts = round(t / TIME_BASE)
                    if pts <= last_pts:
                        continue  # duplicate timestamps would stop the muxer
                    last_pts = pts
                    picture = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                    if (picture.width, picture.height) != (painter.width, painter.height):
                        picture = picture.reformat(width=painter.width, height=painter.height)
                    shown = picture.to_ndarray(format="rgb24")
                    if overlay is not None:
                        shown = overlay.apply(shown, t)
                    if people is not None:
                        shown = people.apply(shown, t)
                    painted = av.VideoFrame.from_ndarray(painter.paint(shown, t), format="rgb24")
                    painted.pts, painted.time_base = pts, TIME_BASE
                    for packet in out.encode(painted):
                        writer.mux(packet)
                    written += 1
                    if on_frame is not None:
                        on_frame(written)
                if out is not None:
                    for packet in out.encode():
                        writer.mux(packet)
        if written == 0:
            raise ValueError(f"{source.name}: no decodable frames")
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return written
