"""GET /v1/jobs/{id}/results in every format, format negotiation and segment pages."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Service, assert_problem, submit

pytestmark = pytest.mark.anyio


def fake_payload(n: int, *, stride: float = 1.0, length: float = 1.0) -> dict[str, Any]:
    segments = []
    for i in range(n):
        top = "walking" if i % 3 else "running <fast> & far"
        segments.append(
            {
                "index": i,
                "start": i * stride,
                "end": i * stride + length,
                "first_frame_time": i * stride,
                "last_frame_time": i * stride + length - 1 / 30,
                "labels": [
                    {"label": top, "class_id": 7 if i % 3 else 3, "score": 0.75},
                    {"label": "jumping", "class_id": 5, "score": 0.2},
                ],
            }
        )
    return {
        "model": "x3d_xs",
        "labelset": "kinetics400",
        "options": {"top_k": 2},
        "video": {"duration": float(n)},
        "segments": segments,
        "summary": [{"label": "walking", "class_id": 7, "score": 0.5}],
        "runs": [{"label": "walking", "class_id": 7, "start": 1.0, "end": 3.0, "score": 0.75}],
        "provenance": {"model": "x3d_xs"},
    }


async def finished_job(service: Service, clip: Path, payload: dict[str, Any]) -> str:
    """A succeeded job whose stored results are ``payload`` (no model run)."""
    job_id: str = (await submit(service, clip)).json()["id"]
    lease = service.store.claim("test-worker", 30)
    assert lease is not None and lease.job.id == job_id
    service.store.complete(lease, payload)
    return job_id


async def test_json_is_the_default_with_runs_and_summary(service: Service, short_clip: Path) -> None:
    job_id = await finished_job(service, short_clip, fake_payload(4))
    response = await service.client.get(f"/v1/jobs/{job_id}/results")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert len(body["segments"]) == 4 and body["next_cursor"] is None
    assert body["runs"][0]["label"] == "walking" and body["summary"][0]["score"] == 0.5


@pytest.mark.parametrize(
    ("query", "accept", "media"),
    [
        ("?format=csv", None, "text/csv; charset=utf-8"),
        ("", "text/csv", "text/csv; charset=utf-8"),
        ("", "text/vtt", "text/vtt; charset=utf-8"),
        ("?format=srt", None, "application/x-subrip; charset=utf-8"),
        ("", "application/x-subrip;q=0.9, text/csv;q=0.5", "application/x-subrip; charset=utf-8"),
        ("", "application/x-ndjson", "application/x-ndjson"),
        ("?format=json", "text/csv", "application/json"),
        ("?format=vtt", "application/json", "text/vtt; charset=utf-8"),
        ("", "image/png, */*;q=0.1", "application/json"),
    ],
)
async def test_format_query_wins_over_accept(
    service: Service, short_clip: Path, query: str, accept: str | None, media: str
) -> None:
    job_id = await finished_job(service, short_clip, fake_payload(2))
    headers = {"Accept": accept} if accept else {}
    response = await service.client.get(f"/v1/jobs/{job_id}/results{query}", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media


async def test_csv_has_a_row_per_segment_and_label(service: Service, short_clip: Path) -> None:
    job_id = await finished_job(service, short_clip, fake_payload(3))
    text = (await service.client.get(f"/v1/jobs/{job_id}/results?format=csv")).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["segment", "start", "end", "rank", "label", "class_id", "score"]
    assert len(rows) == 6
    assert [(r["segment"], r["rank"]) for r in rows[:2]] == [("0", "1"), ("0", "2")]
    assert rows[0]["label"] == "running <fast> & far" and float(rows[0]["score"]) == 0.75
    assert float(rows[5]["start"]) == 2.0 and float(rows[5]["end"]) == 3.0


async def test_vtt_and_srt_cues(service: Service, short_clip: Path) -> None:
    # Overlapping segments (stride 0.5 s, length 1 s): each cue ends where the next starts.
    job_id = await finished_job(service, short_clip, fake_payload(3, stride=0.5))
    vtt = (await service.client.get(f"/v1/jobs/{job_id}/results?format=vtt")).text
    assert vtt.startswith("WEBVTT\n\n")
    assert "00:00:00.000 --> 00:00:00.500\nrunning &lt;fast&gt; &amp; far 75%\njumping 20%" in vtt
    assert "00:00:01.000 --> 00:00:02.000\nwalking 75%" in vtt
    srt = (await service.client.get(f"/v1/jobs/{job_id}/results?format=srt")).text
    assert srt.startswith("1\r\n00:00:00,000 --> 00:00:00,500\r\nrunning <fast> & far 75%")
    assert "3\r\n00:00:01,000 --> 00:00:02,000\r\n" in srt


async def test_json_pages_through_segments(service: Service, short_clip: Path) -> None:
    job_id = await finished_job(service, short_clip, fake_payload(250))
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 100} | ({"cursor": cursor} if cursor else {})
        body = (await service.client.get(f"/v1/jobs/{job_id}/results", params=params)).json()
        seen += [s["index"] for s in body["segments"]]
        assert body["runs"] and body["summary"], "every page carries runs and summary"
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and seen == list(range(250))


async def test_jsonl_pages_with_link_header(service: Service, short_clip: Path) -> None:
    job_id = await finished_job(service, short_clip, fake_payload(5))
    first = await service.client.get(f"/v1/jobs/{job_id}/results?format=jsonl&limit=3")
    lines = [json.loads(line) for line in first.text.splitlines()]
    assert [s["index"] for s in lines] == [0, 1, 2]
    assert 'rel="next"' in first.headers["link"]
    rest = await service.client.get(
        f"/v1/jobs/{job_id}/results", params={"format": "jsonl", "cursor": first.headers["x-next-cursor"]}
    )
    assert [json.loads(line)["index"] for line in rest.text.splitlines()] == [3, 4]
    assert "link" not in rest.headers


async def pages(service: Service, job_id: str, fmt: str, limit: int) -> list[str]:
    """Every page of ``fmt``, following ``Link: rel="next"`` as a client would."""
    url: str | None = f"/v1/jobs/{job_id}/results?format={fmt}&limit={limit}"
    bodies = []
    while url is not None:
        response = await service.client.get(url)
        assert response.status_code == 200, response.text
        assert response.headers["vary"] == "Accept"
        bodies.append(response.text)
        link = response.headers.get("link")
        assert (link is None) == ("x-next-cursor" not in response.headers)
        url = link[1 : link.index(">")] if link else None
        assert url is None or response.headers["x-next-cursor"] in url
    return bodies


def vtt_cues(text: str) -> list[str]:
    header, _, body = text.partition("\n\n")
    assert header == "WEBVTT", "every page is a WebVTT file of its own"
    return [cue.strip() for cue in body.split("\n\n") if cue.strip()]


async def test_csv_pages_concatenate_to_the_whole_file(service: Service, short_clip: Path) -> None:
    job_id = await finished_job(service, short_clip, fake_payload(5))
    whole = (await service.client.get(f"/v1/jobs/{job_id}/results?format=csv")).text
    bodies = await pages(service, job_id, "csv", 2)
    assert len(bodies) == 3
    paged_rows = [row for body in bodies for row in csv.DictReader(io.StringIO(body))]
    assert paged_rows == list(csv.DictReader(io.StringIO(whole))) and len(paged_rows) == 10
    assert all(body.startswith("segment,start,end,rank,label,class_id,score\r\n") for body in bodies)
    assert [r["segment"] for r in csv.DictReader(io.StringIO(bodies[1]))] == ["2", "2", "3", "3"]


async def test_vtt_and_srt_pages_concatenate_to_the_whole_file(service: Service, short_clip: Path) -> None:
    # Overlapping segments, so a page's last cue is trimmed by the next page's first segment.
    job_id = await finished_job(service, short_clip, fake_payload(5, stride=0.5))
    whole = (await service.client.get(f"/v1/jobs/{job_id}/results?format=vtt")).text
    bodies = await pages(service, job_id, "vtt", 2)
    assert len(bodies) == 3
    assert [cue for body in bodies for cue in vtt_cues(body)] == vtt_cues(whole)
    assert len(vtt_cues(whole)) == 5
    whole_srt = (await service.client.get(f"/v1/jobs/{job_id}/results?format=srt")).text
    srt_pages = await pages(service, job_id, "srt", 2)
    assert "".join(srt_pages) == whole_srt
    assert srt_pages[1].startswith("3\r\n00:00:01,000 --> 00:00:01,500\r\n")


async def test_json_page_headers(service: Service, short_clip: Path) -> None:
    job_id = await finished_job(service, short_clip, fake_payload(3))
    first = await service.client.get(f"/v1/jobs/{job_id}/results?limit=2")
    assert first.headers["vary"] == "Accept"
    body = first.json()
    assert first.headers["x-next-cursor"] == body["next_cursor"]
    assert first.headers["link"] == (
        f'</v1/jobs/{job_id}/results?format=json&cursor={body["next_cursor"]}&limit=2>; rel="next"'
    )
    last = await service.client.get(first.headers["link"][1 : first.headers["link"].index(">")])
    assert [s["index"] for s in last.json()["segments"]] == [2]
    assert last.headers["vary"] == "Accept" and "link" not in last.headers


async def test_bad_format_and_cursor(service: Service, short_clip: Path) -> None:
    job_id = await finished_job(service, short_clip, fake_payload(2))
    assert_problem(await service.client.get(f"/v1/jobs/{job_id}/results?format=xml"), 422, "invalid_options")
    bad = await service.client.get(f"/v1/jobs/{job_id}/results?cursor=nope")
    assert_problem(bad, 422, "invalid_options")
    bad_csv = await service.client.get(f"/v1/jobs/{job_id}/results?format=csv&cursor=nope")
    assert_problem(bad_csv, 422, "invalid_options")
    unfinished = (await submit(service, short_clip)).json()["id"]
    early = await service.client.get(f"/v1/jobs/{unfinished}/results?format=vtt")
    assert_problem(early, 409, "job_not_finished")


async def test_real_analysis_renders_in_every_format(service: Service, short_clip: Path) -> None:
    job_id = (await submit(service, short_clip, segment_seconds=1.0, top_k=2)).json()["id"]
    assert service.new_worker().run_once()
    for fmt in ("json", "jsonl", "csv", "vtt", "srt"):
        response = await service.client.get(f"/v1/jobs/{job_id}/results?format={fmt}")
        assert response.status_code == 200, (fmt, response.text)
    rows = list(
        csv.DictReader(io.StringIO((await service.client.get(f"/v1/jobs/{job_id}/results?format=csv")).text))
    )
    assert len(rows) == 4 * 2
    vtt = (await service.client.get(f"/v1/jobs/{job_id}/results?format=vtt")).text
    assert vtt.count(" --> ") == 4
