"""The job budget's explain term (``budget.py``): explaining adds, per segment, the explained
clip's forward again and a backward per label (up to ``EXPLAIN_LABELS`` of a multi-label model),
in views of the model; the timeout message names it."""

from __future__ import annotations

import pytest

from app.analysis.budget import (
    EXPLAIN_BACKWARD,
    EXPLAIN_FORWARD,
    EXPLAIN_LABELS,
    JobBudget,
    explain_cost,
    model_cost,
)
from app.analysis.catalog import load_catalog
from app.analysis.explain_task import MULTILABEL_MAX
from tests.conftest import REPO

USED = {"start": 10.0, "end": 70.0, "clips_per_segment": 2, "crops": 3}


def test_explaining_adds_a_forward_and_a_backward_per_label_in_views() -> None:
    catalog = load_catalog(REPO / "models")
    x3d_s, multi = catalog.get("x3d_s"), catalog.get("demo_motion_multi")
    assert multi.task == "multilabel" and x3d_s.task == "classification"
    assert EXPLAIN_LABELS == MULTILABEL_MAX, "the budget counts the labels the explainer explains"
    assert (EXPLAIN_FORWARD, EXPLAIN_BACKWARD) == (1.0, 2.0)
    budget = JobBudget(base_seconds=600, per_video_second=5, jobs_in_flight=2)
    for spec, labels in ((x3d_s, 1), (multi, 3)):
        plain = budget.seconds(spec, {**USED, "explain": False})
        assert plain == budget.seconds(spec, USED) == (600 + 5 * 60 * model_cost(spec) * 6) * 2
        assert explain_cost(spec, USED) == 0.0
        explained = budget.seconds(spec, {**USED, "explain": True})
        assert explain_cost(spec, {**USED, "explain": True}) == 1 + 2 * labels
        assert explained - plain == pytest.approx(5 * 60 * model_cost(spec) * (1 + 2 * labels) * 2)


def test_the_timeout_message_names_the_explain_term() -> None:
    x3d_s = load_catalog(REPO / "models").get("x3d_s")
    budget = JobBudget(base_seconds=600, per_video_second=5)
    message = budget.deadline(x3d_s, {**USED, "explain": True}, 0.0).budget
    assert "x (2 clips x 3 crops + explain 3)" in message, message
    assert f"{budget.seconds(x3d_s, {**USED, 'explain': True}):.1f} s" in message
    assert "explain" not in budget.deadline(x3d_s, USED, 0.0).budget
