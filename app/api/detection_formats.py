"""A detection job's results as JSON Lines, CSV, WebVTT or SubRip (``formats.py`` routes here).

* JSONL: one line per detection (``{time, box, person_score, track_id, labels}``, in time
  order), then one ``{"track": {...}}`` line per track.
* CSV: one row per keyframe x person x label (``DETECTION_CSV_COLUMNS``; rank 1 = best); a
  person with no label above ``min_score`` still gets a row, with empty label columns.
* VTT/SRT: one cue per keyframe with people, spanning half the way to its neighbours (the
  whole video for a single keyframe), a line per person: ``#<track> <action> <score>, ...``.

These files are small (people per keyframe, not frames), so they are not paged.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

DETECTION_CSV_COLUMNS = (
    "time",
    "track_id",
    "x1",
    "y1",
    "x2",
    "y2",
    "person_score",
    "rank",
    "label",
    "class_id",
    "score",
)


def render_detection_jsonl(payload: dict[str, Any]) -> str:
    lines = [*payload.get("detections", []), *({"track": t} for t in payload.get("tracks", []))]
    return "".join(json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n" for line in lines)


def render_detection_csv(payload: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(DETECTION_CSV_COLUMNS)
    for found in payload.get("detections", []):
        score = found.get("person_score")
        head = [repr(float(found["time"])), found["track_id"], *(repr(float(v)) for v in found["box"])]
        head.append("" if score is None else repr(float(score)))
        labels = found.get("labels") or []
        if not labels:
            writer.writerow([*head, "", "", "", ""])
        for rank, label in enumerate(labels, start=1):
            writer.writerow([*head, rank, label["label"], label["class_id"], repr(float(label["score"]))])
    return out.getvalue()


def keyframe_windows(times: Sequence[float], duration: float) -> list[tuple[float, float]]:
    """Each keyframe's span: halfway to the previous and the next one, inside ``[0, duration]``."""
    ordered = sorted(times)
    if len(ordered) == 1:
        return [(0.0, max(duration, ordered[0]))]
    spans = []
    for i, t in enumerate(ordered):
        before = (ordered[i - 1] + t) / 2 if i else t - (ordered[1] - t) / 2
        after = (t + ordered[i + 1]) / 2 if i + 1 < len(ordered) else t + (t - ordered[i - 1]) / 2
        spans.append((max(0.0, before), min(duration, after) if duration > 0 else after))
    return spans


def detection_cues(payload: dict[str, Any]) -> list[tuple[float, float, list[str]]]:
    """(start, end, lines) per keyframe with people: one line per person, by track id."""
    by_time: dict[float, list[dict[str, Any]]] = defaultdict(list)
    for found in payload.get("detections", []):
        by_time[float(found["time"])].append(found)
    times = sorted({*map(float, payload.get("keyframes") or []), *by_time})
    duration = float((payload.get("video") or {}).get("duration") or 0.0)
    cues = []
    for t, (start, end) in zip(times, keyframe_windows(times, duration), strict=True):
        if by_time.get(t) and end > start:
            people = sorted(by_time[t], key=lambda d: d["track_id"])
            cues.append((start, end, [_person_line(d) for d in people]))
    return cues


def _person_line(found: dict[str, Any]) -> str:
    actions = ", ".join(
        f"{' '.join(str(lab['label']).split())} {_percent(lab['score'])}" for lab in found["labels"]
    )
    return f"#{found['track_id']} {actions or '-'}"


def _percent(score: float) -> str:
    value = 100 * float(score)
    return f"{value:.0f}%" if value >= 10 else f"{value:.1f}%"


def render_detection_cues(payload: dict[str, Any], *, vtt: bool) -> str:
    parts = ["WEBVTT", ""] if vtt else []
    for number, (start, end, lines) in enumerate(detection_cues(payload), start=1):
        text = "\n".join(lines)
        if vtt:
            text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        sep = "." if vtt else ","
        parts += [f"kf-{number}" if vtt else str(number), f"{_clock(start, sep)} --> {_clock(end, sep)}"]
        parts += [*text.split("\n"), ""]
    if vtt:
        return "\n".join(parts)
    return "\r\n".join(parts) + ("\r\n" if parts else "")


def _clock(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{ms:03d}"


def render_detection(fmt: str, payload: dict[str, Any]) -> str:
    """``fmt``: ``jsonl``, ``csv``, ``vtt`` or ``srt``."""
    if fmt == "jsonl":
        return render_detection_jsonl(payload)
    if fmt == "csv":
        return render_detection_csv(payload)
    if fmt in ("vtt", "srt"):
        return render_detection_cues(payload, vtt=fmt == "vtt")
    raise ValueError(f"{fmt} is not a text format")
