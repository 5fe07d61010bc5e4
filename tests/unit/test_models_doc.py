"""docs/MODELS.md and docs/manifest.schema.json stay true: the schema is the one the code
generates, the manifests and the worked example validate and really load, the table matches
the catalog, and nothing points users at notes that are not in the repository."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import torch

from app.analysis.catalog import builtin_names, load_catalog, read_labels
from app.analysis.loader import ModelLoader, build_model
from app.analysis.manifest import manifest_json_schema
from tests.unit.test_catalog import BAD_ENTRIES, GOOD_ENTRY

REPO = Path(__file__).resolve().parents[2]
MODELS_MD = REPO / "docs" / "MODELS.md"
SCHEMA_FILE = REPO / "docs" / "manifest.schema.json"

# What a JSON Schema cannot know: the files on disk, the installed pytorchvideo, and rules
# that relate two fields or read a string's parts. The loader catches these (test_catalog).
TIMES, DASH = "\N{MULTIPLICATION SIGN}", "\N{EN DASH}"
LOADER_ONLY = {"missing.json", "exceeds", "labels", "does not exist", "weights", "__builtins__"}


def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def example(name: str) -> Any:
    """The JSON block that follows ``<!-- example: name -->`` in MODELS.md."""
    found = re.search(
        rf"<!-- example: {re.escape(name)} -->\n```json\n(.*?)\n```", MODELS_MD.read_text(), re.S
    )
    assert found, f"MODELS.md has no example {name}"
    return json.loads(found.group(1))


def test_the_committed_schema_is_the_generated_one() -> None:
    generated = manifest_json_schema(builtin_names())
    assert json.loads(SCHEMA_FILE.read_text()) == generated, (
        "regenerate: python -m app models schema > docs/manifest.schema.json"
    )


def test_the_shipped_manifest_and_the_worked_example_validate() -> None:
    schema = validator()
    for document in (json.loads((REPO / "models" / "manifest.json").read_text()), example("manifest.json")):
        assert list(schema.iter_errors(document)) == []
    assert list(schema.iter_errors({"models": [{"name": "x3d_s", "crop": 182}]})) == []  # an override
    assert list(schema.iter_errors({"models": [GOOD_ENTRY]})) == []


@pytest.mark.parametrize(("entry", "name", "match"), BAD_ENTRIES)
def test_the_schema_refuses_what_the_catalog_skips(entry: object, name: str, match: str) -> None:
    errors = list(validator().iter_errors({"models": [entry]}))
    assert errors or any(m in match or m in json.dumps(entry) for m in LOADER_ONLY), (
        f"the schema accepts {entry}, which the catalog skips ({match})"
    )


def test_the_worked_example_loads_and_runs(tmp_path: Path) -> None:
    manifest = example("manifest.json")
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "kitchen_labels.json").write_text(json.dumps(example("kitchen_labels.json")))
    catalog = load_catalog(tmp_path)
    assert catalog.skipped == ()
    spec = catalog.get("kitchen_x3d_s")
    assert read_labels(spec) == ("chopping", "stirring", "pouring", "washing dishes", "idle")
    torch.manual_seed(0)
    torch.save({"model_state": build_model(spec).state_dict()}, tmp_path / spec.weights)
    model = ModelLoader(tmp_path).load(spec).module
    with torch.no_grad():
        scores = model(torch.zeros(1, 3, spec.frames, spec.crop, spec.crop))
    assert scores.shape == (1, 5)
    assert torch.allclose(scores.sum(dim=1), torch.ones(1))  # "output": "probabilities" is right


def test_the_table_matches_the_catalog() -> None:
    rows = {
        cells[0].strip("`"): cells
        for line in MODELS_MD.read_text().splitlines()
        if line.startswith("| `") and len(cells := [c.strip() for c in line.strip("|").split("|")]) == 12
    }
    catalog = load_catalog(REPO / "does-not-exist")
    frame_models = {n for n in builtin_names() if catalog.get(n).task in ("classification", "multilabel")}
    assert set(rows) == frame_models  # detection models and their detector: a table of their own
    for name, cells in rows.items():
        spec = catalog.get(name)
        assert cells[1] == f"{spec.frames}{TIMES}{spec.sampling_rate}", name
        assert cells[3] == (str(spec.alpha) if spec.alpha else DASH), name
        assert cells[4] == f"{spec.short_side} → {spec.crop}", name
        assert cells[5] == str(spec.three_crop_size), name
        assert cells[6] == spec.output, name
        published = f"{spec.top1:.2f} / {spec.top5:.2f}" if spec.top1 is not None else f"mAP {spec.mAP:.2f}"
        assert cells[7] == published, name
        assert cells[8] == f"{spec.params_m:.2f}", name
        assert cells[10] == f"`{spec.weights}`", name
        assert cells[11] == (f"`{spec.checkpoint_key}`" if spec.checkpoint_key else "bare"), name


def test_no_document_or_code_points_at_notes_outside_the_repository() -> None:
    internal_notes = "ZOO" + ".md"
    places = [REPO / "README.md", REPO / "Makefile", *(REPO / d for d in ("app", "docs", "models", "tests"))]
    files = [p for place in places for p in ([place] if place.is_file() else place.rglob("*"))]
    cited = [
        str(p.relative_to(REPO))
        for p in files
        if p.is_file()
        and p.suffix in {".py", ".md", ".json", ".html", ""}
        and internal_notes in p.read_text()
    ]
    assert cited == []
    for place in (REPO / "README.md", REPO / "docs", REPO / "app"):
        for p in [place] if place.is_file() else place.rglob("*.md"):
            assert "../shared" not in p.read_text(), p
