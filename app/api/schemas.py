"""Response bodies of API v1 (these field names are the public contract); the job document
itself (``JobOut``) lives in ``app.job_json``, shared with the webhooks and the store."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer
from pydantic.json_schema import SkipJsonSchema

from app.job_json import JobOut


def _absent_not_null_schema(schema: dict[str, Any]) -> None:
    """Optional members are left out, never sent as null: say so in the schema."""
    for member in schema.get("properties", {}).values():
        if "default" in member and member["default"] is None:
            del member["default"]


class JobList(BaseModel):
    items: list[JobOut]
    next_cursor: str | None


class LabelScore(BaseModel):
    label: str
    class_id: int
    score: float


class SummaryLabel(LabelScore):
    """A summary entry. Classifier: the label's mean score over the segments (top-k).
    Multi-label: every label kept in some segment, ``score`` its maximum, ``share`` the
    fraction of the analysed time (union of segment spans) where it was kept."""

    model_config = ConfigDict(json_schema_extra=_absent_not_null_schema)

    share: Annotated[float, Field(ge=0, le=1)] | SkipJsonSchema[None] = Field(
        default=None, description="multi-label only"
    )

    @model_serializer(mode="wrap")
    def _share_only_when_set(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        """A classifier's entries keep today's three members (no ``share: null``)."""
        data = handler(self)
        if data.get("share") is None:
            data.pop("share", None)
        return data


class SegmentOut(BaseModel):
    index: int
    start: float
    end: float
    first_frame_time: float | None = None
    last_frame_time: float | None = None
    labels: list[LabelScore]


class RunOut(BaseModel):
    """Classifier: consecutive segments sharing a top-1 label (runs follow one another).
    Multi-label: per label, consecutive segments keeping it (runs may overlap)."""

    label: str
    class_id: int
    start: float
    end: float
    score: float


class ShotOut(BaseModel):
    """One shot (``detect_shots``): ``[start, end)`` in seconds, the shots covering the video
    end to end; ``transition`` is how it began (``cut``, ``gradual``; null for the first)."""

    index: int
    start: float
    end: float
    transition: Literal["cut", "gradual"] | None


class FrameWeightOut(BaseModel):
    time: float
    weight: float = Field(description="0..1: how much this frame drove the label")


class HeatmapOut(BaseModel):
    """A t x h x w grid over the displayed frame (rotation applied, the model's crop placed
    back): ``data[k][i][j]`` (0..1) covers rows ``[i*H/h, (i+1)*H/h)`` and columns
    ``[j*W/w, (j+1)*W/w)`` of the H x W frame at ``times[k]``; zero outside the model's crop."""

    t: int
    h: int
    w: int
    times: list[float]
    data: list[list[list[float]]]


class ExplanationOut(BaseModel):
    """Why a segment got a label (``explain``): ``method`` names how the map was made."""

    segment: int
    label: str
    class_id: int
    method: str
    frames: list[FrameWeightOut]
    heatmap: HeatmapOut


class PersonOut(BaseModel):
    """One person on one keyframe (detection models): box ``[x1, y1, x2, y2]`` normalised 0..1
    of the displayed frame; ``person_score`` null for the caller's own boxes."""

    time: float
    box: list[float]
    person_score: float | None
    track_id: int
    labels: list[LabelScore]


class TrackOut(BaseModel):
    """A person followed over keyframes (first and last keyframe), with its action runs."""

    id: int
    start: float
    end: float
    runs: list[RunOut]


_OPTIONAL_MEMBERS = ("shots", "explanations", "detections", "tracks", "keyframes", "person_source")


def _shots_absent_not_null(schema: dict[str, Any]) -> None:
    for name in _OPTIONAL_MEMBERS:
        schema.get("properties", {}).get(name, {}).pop("default", None)


class ResultsOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=_shots_absent_not_null)

    job_id: str
    model: str
    labelset: str
    task: Literal["classification", "multilabel", "detection"] = Field(
        default="classification",
        description=(
            "classification: one softmax per segment; multilabel: a sigmoid per label; "
            "detection: people per keyframe (detections, tracks), a sigmoid per action"
        ),
    )
    video: dict[str, Any]
    options: dict[str, Any] = Field(default_factory=dict)
    segments: list[SegmentOut]
    summary: list[SummaryLabel]
    runs: list[RunOut] = Field(default_factory=list)
    provenance: dict[str, Any] = Field(default_factory=dict)
    shots: list[ShotOut] | SkipJsonSchema[None] = Field(
        default=None, description="The video's shots; only when the job asked for them (detect_shots)"
    )
    explanations: list[ExplanationOut] | SkipJsonSchema[None] = Field(
        default=None, description="Why each segment got its top labels; only when the job asked (explain)"
    )
    detections: list[PersonOut] | SkipJsonSchema[None] = Field(
        default=None, description="Detection models: one entry per keyframe and person"
    )
    tracks: list[TrackOut] | SkipJsonSchema[None] = Field(
        default=None, description="Detection models: people linked across keyframes, with their actions"
    )
    keyframes: list[float] | SkipJsonSchema[None] = Field(
        default=None, description="Detection models: every keyframe's time, with or without people"
    )
    person_source: str | SkipJsonSchema[None] = Field(
        default=None, description="Detection models: 'boxes' (the caller's) or the person detector's name"
    )
    next_cursor: str | None = Field(default=None, description="More segments: pass as ?cursor= (with limit)")

    @model_serializer(mode="wrap")
    def _shots_only_when_asked(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        """Jobs that did not ask for shots keep today's members (no ``shots: null``)."""
        data = handler(self)
        for name in _OPTIONAL_MEMBERS:
            if data.get(name) is None:
                data.pop(name, None)
        return data


class ProblemItem(BaseModel):
    loc: list[str] = Field(description='Where in the request: e.g. ["query", "limit"]')
    msg: str


class Problem(BaseModel):
    """RFC 9457 problem details; every error response has this shape (served as
    application/problem+json). The optional members appear with the codes named."""

    model_config = ConfigDict(json_schema_extra=_absent_not_null_schema)

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[ProblemItem] | SkipJsonSchema[None] = Field(
        default=None, description="invalid_request: each invalid part"
    )
    job_status: str | SkipJsonSchema[None] = Field(
        default=None, description="job_not_finished: the job's status"
    )
    limit: str | SkipJsonSchema[None] = Field(
        default=None, description="rate_limited: which per-tenant limit was reached"
    )
    retry_after: int | SkipJsonSchema[None] = Field(
        default=None, description="rate_limited: seconds, as in Retry-After"
    )
    checks: dict[str, str] | SkipJsonSchema[None] = Field(
        default=None, description="not_ready: each readiness check"
    )


PROBLEM_SCHEMA_REF = "#/components/schemas/Problem"
"""Error bodies point here; ``problems.install`` adds the component to the document
(a ``model`` would be documented as application/json, which errors never are)."""

RETRY_AFTER_HEADER: dict[str, Any] = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    }
}


def problem_response(description: str | None = None, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """An OpenAPI response whose body is a ``Problem`` as application/problem+json."""
    response: dict[str, Any] = {
        "content": {"application/problem+json": {"schema": {"$ref": PROBLEM_SCHEMA_REF}}}
    }
    if description:
        response["description"] = description
    if headers:
        response["headers"] = headers
    return response


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    **{status: problem_response() for status in (400, 404, 409, 413, 415, 422)},
    503: problem_response("Unavailable or shutting down; retry after Retry-After", RETRY_AFTER_HEADER),
}

RESULTS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The results; ?format= or Accept picks the representation",
        "content": {
            "application/x-ndjson": {},
            "text/csv": {},
            "text/vtt": {},
            "application/x-subrip": {},
        },
    }
}
