"""Turn the text fields of a job submission into a model name and validated JobOptions."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from app.errors import InvalidOptions
from app.options import JobOptions

if TYPE_CHECKING:
    from app.analysis.catalog import Catalog

_INT_FIELDS = {"clips_per_segment", "crops", "top_k"}
_FLOAT_FIELDS = {"segment_seconds", "stride_seconds", "start", "end", "min_score"}
_FLOAT_FIELDS |= {"keyframe_seconds", "person_min_score"}  # detection models
SOURCE_FIELD = "source_url"
_JSON_FIELDS = {"segments", "boxes"}
_BOOL_FIELDS = {"detect_shots", "explain"}
_FLOAT_FIELDS |= {"max_segment_seconds"}
_CHOICE_FIELDS = {"segmentation"}
"""Passed on as text: the options say which values they take."""
_TEXT_FIELDS = {"model", "callback_url", SOURCE_FIELD}
FORM_FIELDS = _TEXT_FIELDS | _INT_FIELDS | _FLOAT_FIELDS | _JSON_FIELDS | _BOOL_FIELDS | _CHOICE_FIELDS
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}
"""How a form (an HTML checkbox sends ``on``), a query-style body or JSON says yes or no."""


def _convert(name: str, raw: str) -> Any:
    text = raw.strip()
    if name in _CHOICE_FIELDS:
        return text
    if name in _BOOL_FIELDS:
        if text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise InvalidOptions(f"{name} must be true or false, got {raw[:40]!r}")
    if name in _JSON_FIELDS:
        try:
            return json.loads(text)
        except ValueError as exc:
            example = (
                '[{"time": 1, "boxes": [[0.1, 0.2, 0.4, 0.9]]}]'
                if name == "boxes"
                else "[[0, 4], [10, 12.5]]"
            )
            raise InvalidOptions(f"{name} must be JSON, e.g. {example}; got {raw[:40]!r}") from exc
    try:
        if name in _INT_FIELDS:
            return int(text)
        value = float(text)
    except ValueError as exc:
        kind = "an integer" if name in _INT_FIELDS else "a number"
        raise InvalidOptions(f"{name} must be {kind}, got {raw[:40]!r}") from exc
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidOptions(f"{name} must be a finite number")
    return value


def parse_job_form(fields: dict[str, str], default_model: str, catalog: Catalog) -> tuple[str, JobOptions]:
    """Validate the submission fields; empty fields count as not given (HTML forms send them)."""
    model = fields.get("model", "").strip() or default_model
    catalog.get(model)  # raises UnknownModel (422)
    values = {k: _convert(k, v) for k, v in fields.items() if k not in _TEXT_FIELDS and v.strip()}
    try:
        options = JobOptions(**values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}" for e in exc.errors())
        raise InvalidOptions(problems) from exc
    return model, options
