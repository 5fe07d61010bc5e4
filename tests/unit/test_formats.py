"""Result renderers: timestamps, cues, negotiation and cursors (pure functions)."""

from __future__ import annotations

import pytest

from app.api import formats
from app.api.formats import ResultFormat
from app.errors import InvalidOptions


def test_clock_formats_hours_and_rounds_milliseconds() -> None:
    assert formats._clock(3725.0006, ".") == "01:02:05.001"
    assert formats._clock(0.0, ",") == "00:00:00,000"


def test_cues_skip_segments_without_labels_and_trim_overlaps() -> None:
    segs = [
        {"index": 0, "start": 0.0, "end": 2.0, "labels": [{"label": "a", "class_id": 0, "score": 0.5}]},
        {"index": 1, "start": 1.0, "end": 3.0, "labels": []},
        {"index": 2, "start": 2.0, "end": 4.0, "labels": [{"label": "b", "class_id": 1, "score": 1.0}]},
    ]
    assert [(c.number, c.segment, c.start, c.end, c.labels) for c in formats.cues(segs)] == [
        (1, 0, 0.0, 1.0, segs[0]["labels"]),
        (2, 2, 2.0, 4.0, segs[2]["labels"]),
    ]
    assert formats.render_srt([]) == "" and formats.render_vtt([]) == "WEBVTT\n"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, ResultFormat.JSON),
        ("text/vtt;q=0", ResultFormat.JSON),
        ("text/csv;q=0.2, text/vtt;q=0.8", ResultFormat.VTT),
        ("TEXT/CSV", ResultFormat.CSV),
        ("application/jsonl, text/csv", ResultFormat.JSONL),
    ],
)
def test_negotiate(accept: str | None, expected: ResultFormat) -> None:
    assert formats.negotiate(None, accept) is expected


def test_cursor_round_trip_and_rejects_garbage() -> None:
    assert formats.decode_cursor(formats.encode_cursor(42)) == 42
    for bad in ("", "!!", formats.encode_cursor(-1), "c2VnOng"):
        with pytest.raises(InvalidOptions):
            formats.decode_cursor(bad)
    assert formats.page([{"i": 1}], 5, formats.encode_cursor(9)).segments == []


def test_a_page_of_cues_is_trimmed_and_numbered_as_in_the_whole_file() -> None:
    # Overlapping segments: the page's last cue ends where the next page's first starts,
    # and the SRT numbers go on from the previous page instead of restarting at 1.
    label = [{"label": "a", "class_id": 0, "score": 0.5}]
    segs = [{"index": i, "start": i * 0.5, "end": i * 0.5 + 1.0, "labels": label} for i in range(4)]
    second = formats.page(segs, 2, formats.encode_cursor(2))
    srt = formats.render_text(ResultFormat.SRT, segs, second)
    assert srt.startswith("3\r\n00:00:01,000 --> 00:00:01,500\r\n")
    assert "4\r\n00:00:01,500 --> 00:00:02,500\r\n" in srt
    first = formats.render_text(ResultFormat.VTT, segs, formats.page(segs, 2, None))
    assert first.startswith("WEBVTT\n\nseg-1\n") and "00:00:00.500 --> 00:00:01.000" in first
