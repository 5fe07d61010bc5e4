"""Every kept label of a multi-label segment shows in CSV, WebVTT, SubRip and the annotated
video's cues; a classifier's cues keep their best three."""

from __future__ import annotations

import csv
import io
from typing import Any

from starlette.responses import Response

from app.analysis.annotate import cues_from
from app.api import formats
from app.api.formats import ResultFormat

FOUR = [
    {"label": "walk", "class_id": 0, "score": 0.95},
    {"label": "talk", "class_id": 1, "score": 0.9},
    {"label": "wave", "class_id": 2, "score": 0.7},
    {"label": "sit", "class_id": 3, "score": 0.55},
]
SEGMENTS: list[dict[str, Any]] = [
    {"index": 0, "start": 0.0, "end": 1.0, "labels": FOUR},
    {"index": 1, "start": 1.0, "end": 2.0, "labels": FOUR[1:2]},
    {"index": 2, "start": 2.0, "end": 3.0, "labels": []},
]


def body(task: str, fmt: ResultFormat) -> str:
    payload = {"task": task, "segments": SEGMENTS}
    out = formats.respond(payload, fmt, limit=None, cursor=None, job_id="j", response=Response())
    assert isinstance(out, Response)
    return bytes(out.body).decode()


def test_csv_has_a_row_per_kept_label() -> None:
    rows = list(csv.DictReader(io.StringIO(body("multilabel", ResultFormat.CSV))))
    assert [(r["segment"], r["rank"], r["label"]) for r in rows] == [
        ("0", "1", "walk"),
        ("0", "2", "talk"),
        ("0", "3", "wave"),
        ("0", "4", "sit"),
        ("1", "1", "talk"),
        ("2", "", ""),
    ]


def test_vtt_and_srt_cues_show_every_kept_label_of_a_multilabel_segment() -> None:
    vtt = body("multilabel", ResultFormat.VTT)
    first = vtt.split("\n\n")[1]
    assert first.splitlines()[2:] == ["walk 95%", "talk 90%", "wave 70%", "sit 55%"]
    srt = body("multilabel", ResultFormat.SRT)
    assert "sit 55%" in srt.split("\r\n\r\n")[0]


def test_a_classifiers_cues_keep_the_best_three() -> None:
    first = body("classification", ResultFormat.VTT).split("\n\n")[1]
    assert first.splitlines()[2:] == ["walk 95%", "talk 90%", "wave 70%"]
    assert "sit" not in body("classification", ResultFormat.SRT)


def test_annotated_video_cues_carry_every_kept_label_when_asked() -> None:
    assert [len(c.labels) for c in cues_from(SEGMENTS)] == [3, 1, 0]
    assert [len(c.labels) for c in cues_from(SEGMENTS, None)] == [4, 1, 0]
