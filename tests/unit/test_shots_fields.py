"""``detect_shots`` as a submission field, and shots in JSONL (the last page's tail)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.analysis.catalog import load_catalog
from app.api.formats import ResultFormat, page, render_text
from app.api.forms import parse_job_form
from app.errors import InvalidOptions

MODELS = Path(__file__).resolve().parents[2] / "models"
SEGMENTS = [{"index": i, "start": 2.0 * i, "end": 2.0 * i + 2, "labels": []} for i in range(3)]
SHOTS = [
    {"index": 0, "start": 0.0, "end": 2.5, "transition": None},
    {"index": 1, "start": 2.5, "end": 6.0, "transition": "cut"},
]


@pytest.mark.parametrize(
    ("text", "want"), [("true", True), ("on", True), ("1", True), ("FALSE", False), ("0", False)]
)
def test_detect_shots_reads_what_forms_and_json_send(text: str, want: bool) -> None:
    _, options = parse_job_form({"detect_shots": text}, "demo_motion", load_catalog(MODELS))
    assert options.detect_shots is want


def test_detect_shots_refuses_anything_else() -> None:
    with pytest.raises(InvalidOptions, match="detect_shots must be true or false"):
        parse_job_form({"detect_shots": "maybe"}, "demo_motion", load_catalog(MODELS))


def test_jsonl_ends_its_last_page_with_the_shots() -> None:
    first = page(SEGMENTS, 2, None)
    lines = [
        json.loads(x) for x in render_text(ResultFormat.JSONL, SEGMENTS, first, shots=SHOTS).splitlines()
    ]
    assert [x["index"] for x in lines] == [0, 1], "no shots before the last page"
    assert first.next_cursor is not None
    last = page(SEGMENTS, 2, first.next_cursor)
    lines = [json.loads(x) for x in render_text(ResultFormat.JSONL, SEGMENTS, last, shots=SHOTS).splitlines()]
    assert lines == [SEGMENTS[2], {"shot": SHOTS[0]}, {"shot": SHOTS[1]}]
    plain = render_text(ResultFormat.JSONL, SEGMENTS)
    assert [json.loads(x) for x in plain.splitlines()] == SEGMENTS, "a job without shots: segments only"
