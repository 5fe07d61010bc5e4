"""The results payload rendered as JSON, JSON Lines, CSV, WebVTT or SubRip.

One function per format, all reading the stored payload (the single truth): a
``format`` query parameter wins over the ``Accept`` header, and every format can be
paged through segments with ``limit`` and an opaque ``cursor`` (each page a complete
file of its format: CSV with its header, WebVTT with ``WEBVTT``).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from app.api.detection_formats import render_detection
from app.errors import InvalidOptions


class ResultFormat(StrEnum):
    JSON = "json"
    JSONL = "jsonl"
    CSV = "csv"
    VTT = "vtt"
    SRT = "srt"

    @property
    def media_type(self) -> str:
        return _MEDIA_TYPES[self]


_MEDIA_TYPES = {
    ResultFormat.JSON: "application/json",
    ResultFormat.JSONL: "application/x-ndjson",
    ResultFormat.CSV: "text/csv; charset=utf-8",
    ResultFormat.VTT: "text/vtt; charset=utf-8",
    ResultFormat.SRT: "application/x-subrip; charset=utf-8",
}

# Accept media types (lower case, no parameters) -> format; the first of each is canonical.
ACCEPTED: dict[str, ResultFormat] = {
    "application/json": ResultFormat.JSON,
    "application/x-ndjson": ResultFormat.JSONL,
    "application/jsonl": ResultFormat.JSONL,
    "application/jsonlines": ResultFormat.JSONL,
    "application/x-jsonlines": ResultFormat.JSONL,
    "text/csv": ResultFormat.CSV,
    "text/vtt": ResultFormat.VTT,
    "application/x-subrip": ResultFormat.SRT,
    "text/srt": ResultFormat.SRT,
    "text/x-srt": ResultFormat.SRT,
}

CSV_COLUMNS = ("segment", "start", "end", "rank", "label", "class_id", "score")


def negotiate(format_param: str | None, accept: str | None) -> ResultFormat:
    """``format`` wins; otherwise the best ``Accept`` match by q-value; JSON when nothing matches."""
    if format_param:
        try:
            return ResultFormat(format_param.strip().lower())
        except ValueError:
            names = ", ".join(f.value for f in ResultFormat)
            raise InvalidOptions(f"format must be one of {names}, got {format_param[:40]!r}") from None
    best: tuple[float, int, ResultFormat] | None = None
    for position, item in enumerate((accept or "").split(",")):
        media, _, params = item.strip().partition(";")
        found = ACCEPTED.get(media.strip().lower())
        if found is None:
            continue
        q = _quality(params)
        if q > 0 and (best is None or (q, -position) > (best[0], -best[1])):
            best = (q, position, found)
    return best[2] if best else ResultFormat.JSON


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                return max(0.0, min(1.0, float(value)))
            except ValueError:
                return 0.0
    return 1.0


# --------------------------------------------------------------------------- paging


@dataclass(frozen=True)
class Page:
    segments: list[dict[str, Any]]
    next_cursor: str | None


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"seg:{offset}".encode()).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        kind, _, value = raw.partition(":")
        offset = int(value)
        if kind != "seg" or offset < 0:
            raise ValueError(raw)
        return offset
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidOptions("invalid cursor; use the next_cursor of a previous page") from exc


def page(segments: Sequence[dict[str, Any]], limit: int | None, cursor: str | None) -> Page:
    """Segments from ``cursor`` (default: the first), at most ``limit`` (default: all)."""
    start = decode_cursor(cursor) if cursor else 0
    stop = len(segments) if limit is None else min(len(segments), start + limit)
    next_cursor = encode_cursor(stop) if stop < len(segments) else None
    return Page(list(segments[start:stop]), next_cursor)


# --------------------------------------------------------------------------- renderers


def render_jsonl(segments: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(s, separators=(",", ":"), ensure_ascii=False) + "\n" for s in segments)


def render_csv(segments: Iterable[dict[str, Any]]) -> str:
    """One row per segment x label (rank 1 = best): every label the segment kept, so a
    multi-label segment has a row per label going on; a segment with no label above
    ``min_score`` still gets a row, with empty label columns."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for seg in segments:
        head = [seg["index"], _num(seg["start"]), _num(seg["end"])]
        labels = seg.get("labels") or []
        if not labels:
            writer.writerow([*head, "", "", "", ""])
        for rank, label in enumerate(labels, start=1):
            writer.writerow([*head, rank, label["label"], label["class_id"], _num(label["score"])])
    return out.getvalue()


@dataclass(frozen=True)
class Cue:
    """One subtitle cue: ``number`` is its 1-based position among all the job's cues,
    so a page's cues keep the numbers they have in the unpaged file."""

    number: int
    segment: int
    start: float
    end: float
    labels: list[dict[str, Any]]


def cues(segments: Sequence[dict[str, Any]]) -> list[Cue]:
    """One cue per segment with labels. With overlapping segments (stride shorter than
    the segment) a cue ends where the next one starts, so at any moment exactly one cue
    (the newest segment) is showing. Computed over *all* segments, also for a page,
    because a page's last cue is trimmed by the next page's first segment."""
    out: list[Cue] = []
    ordered = sorted(segments, key=lambda s: (s["start"], s["index"]))
    for i, seg in enumerate(ordered):
        start, end = float(seg["start"]), float(seg["end"])
        if i + 1 < len(ordered) and start < float(ordered[i + 1]["start"]) < end:
            end = float(ordered[i + 1]["start"])
        if seg.get("labels") and end > start:
            out.append(Cue(len(out) + 1, int(seg["index"]), start, end, list(seg["labels"])))
    return out


def cue_text(labels: Sequence[dict[str, Any]], *, escape: bool, lines: int | None = 3) -> str:
    """Top label first (``walking 93%``), then up to ``lines - 1`` runners-up (``lines``
    None: every label, as for a multi-label model, whose kept labels all hold at once)."""
    rows = []
    for label in labels[:lines]:
        name = " ".join(str(label["label"]).split())
        if escape:
            name = name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        score = 100 * float(label["score"])
        rows.append(f"{name} {score:.0f}%" if score >= 10 else f"{name} {score:.1f}%")
    return "\n".join(rows)


def render_vtt(cue_list: Iterable[Cue], lines: int | None = 3) -> str:
    parts = ["WEBVTT", ""]
    for cue in cue_list:
        parts += [
            f"seg-{cue.number}",
            f"{_clock(cue.start, '.')} --> {_clock(cue.end, '.')}",
            cue_text(cue.labels, escape=True, lines=lines),
            "",
        ]
    return "\n".join(parts)


def render_srt(cue_list: Iterable[Cue], lines: int | None = 3) -> str:
    parts = []
    for cue in cue_list:
        parts += [
            str(cue.number),
            f"{_clock(cue.start, ',')} --> {_clock(cue.end, ',')}",
            cue_text(cue.labels, escape=False, lines=lines),
            "",
        ]
    return "\r\n".join(parts) + ("\r\n" if parts else "")


def render_text(
    fmt: ResultFormat,
    segments: Sequence[dict[str, Any]],
    chunk: Page | None = None,
    *,
    task: str | None = None,
    shots: Sequence[dict[str, Any]] | None = None,
) -> str:
    """``fmt`` for ``chunk`` (a page of ``segments``; default: all of them). Cues show a
    classifier's best three labels, a multi-label model's (``task``) every kept label.
    JSONL's last page ends with one ``{"shot": {...}}`` line per shot (``detect_shots``)."""
    shown = chunk.segments if chunk is not None else segments
    if fmt is ResultFormat.JSONL:
        last = chunk is None or chunk.next_cursor is None
        return render_jsonl([*shown, *({"shot": shot} for shot in (shots or []) if last)])
    if fmt is ResultFormat.CSV:
        return render_csv(shown)
    if fmt in (ResultFormat.VTT, ResultFormat.SRT):
        on_page = {int(s["index"]) for s in shown}
        page_cues = [c for c in cues(segments) if chunk is None or c.segment in on_page]
        lines = None if task == "multilabel" else 3
        return render_vtt(page_cues, lines) if fmt is ResultFormat.VTT else render_srt(page_cues, lines)
    raise ValueError(f"{fmt} is not a text format")


def _clock(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{ms:03d}"


def _num(value: float) -> str:
    return repr(float(value))


def respond(
    payload: dict[str, Any],
    fmt: ResultFormat,
    *,
    limit: int | None,
    cursor: str | None,
    job_id: str,
    response: Response,
) -> dict[str, Any] | Response:
    """JSON: the payload (segments paged, ``next_cursor``) for the route's response model,
    its headers set on ``response`` (the route's injected ``Response``). Other
    formats: a finished response. Every format names the next page in ``X-Next-Cursor``
    and ``Link: rel="next"``, and says ``Vary: Accept`` (the same URL negotiates)."""
    segments = payload.get("segments") or []
    chunk = page(segments, limit, cursor)
    headers = {"Vary": "Accept"}
    if chunk.next_cursor is not None:
        headers["X-Next-Cursor"] = chunk.next_cursor
        query = urlencode(
            {"format": fmt.value, "cursor": chunk.next_cursor} | ({"limit": str(limit)} if limit else {})
        )
        headers["Link"] = f'</v1/jobs/{job_id}/results?{query}>; rel="next"'
    if fmt is ResultFormat.JSON:
        response.headers.update(headers)
        return {**payload, "segments": chunk.segments, "next_cursor": chunk.next_cursor}
    if fmt is not ResultFormat.JSONL:
        headers["Content-Disposition"] = f'inline; filename="{job_id}.{fmt.value}"'
    if payload.get("task") == "detection":  # people per keyframe: detection_formats.py
        text = render_detection(fmt.value, payload)
    else:
        text = render_text(fmt, segments, chunk, task=payload.get("task"), shots=payload.get("shots"))
    return Response(text, media_type=fmt.media_type, headers=headers)
