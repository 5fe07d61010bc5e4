"""Structured logs: one JSON object per line, carrying the job/worker context operators filter on."""

from __future__ import annotations

import json
import logging

import pytest

from app.logs import JsonFormatter, TextFormatter


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "app.worker.runner", logging.INFO, __file__, 1, "job claimed (attempt %d)", (1,), None
    )
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_json_lines_carry_job_and_worker_ids() -> None:
    line = JsonFormatter().format(_record(job_id="j-1", worker_id="w-7", tenant="acme", other="not logged"))
    entry = json.loads(line)
    assert entry["msg"] == "job claimed (attempt 1)" and entry["level"] == "info"
    assert entry["logger"] == "app.worker.runner" and entry["ts"].endswith("Z")
    assert (entry["job_id"], entry["worker_id"], entry["tenant"]) == ("j-1", "w-7", "acme")
    assert "other" not in entry and "\n" not in line


def test_exceptions_stay_on_one_json_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = _record(job_id="j-2")
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line and "ValueError: boom" in json.loads(line)["exc"]


def test_text_lines_append_the_context() -> None:
    line = TextFormatter("%(levelname)s %(message)s").format(_record(job_id="j-3", worker_id="w-1"))
    assert line == "INFO job claimed (attempt 1) [job_id=j-3 worker_id=w-1]"


@pytest.mark.parametrize("as_json", [True, False])
def test_configure_logging_installs_one_handler(as_json: bool) -> None:
    from app.logs import configure_logging

    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    try:
        configure_logging("warning", as_json=as_json)
        assert len(root.handlers) == 1 and root.level == logging.WARNING
        assert isinstance(root.handlers[0].formatter, JsonFormatter if as_json else TextFormatter)
    finally:
        root.handlers[:], root.level = saved, level
