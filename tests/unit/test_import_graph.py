"""The house keeps its shape: no import circles in ``app/``, arrows only downwards between
its rooms, no room over 400 lines. Function-level and ``TYPE_CHECKING`` imports count."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.import_graph import ImportGraph

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 400

FORBIDDEN: dict[str, tuple[str, ...]] = {
    # Only the store touches the database; it knows nothing of who calls it.
    "app.store": ("app.api", "app.webhooks", "app.worker", "app.analysis", "app.cli"),
    "app.webhooks": ("app.api", "app.worker", "app.cli"),
    # The engine is pure: no HTTP, no database, no worker.
    "app.analysis": ("app.api", "app.store", "app.worker", "app.webhooks", "app.cli"),
    # (The API may import app.worker: ``serve`` embeds a worker thread, imported lazily.)
    "app.api": ("app.cli",),
    "app.worker": ("app.api", "app.cli"),
}


@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    return ImportGraph.of(ROOT, "app", skip=("migrations",))


def test_app_has_no_import_circles(graph: ImportGraph) -> None:
    assert graph.circles() == []


@pytest.mark.parametrize("source", sorted(FORBIDDEN))
def test_no_arrow_climbs_up(graph: ImportGraph, source: str) -> None:
    bad = [arrow for target in FORBIDDEN[source] for arrow in graph.arrows(source, target)]
    assert bad == [], f"{source} must not import {FORBIDDEN[source]}"


def test_no_module_is_over_400_lines(graph: ImportGraph) -> None:
    big = {
        name: n
        for name, path in graph.modules.items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert big == {}


def test_the_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The checker itself: a circle through a function-level import, one through a
    ``TYPE_CHECKING`` import and relative imports, and a forbidden arrow, are all found."""
    pkg = tmp_path / "pkg"
    (pkg / "low").mkdir(parents=True)
    (pkg / "high").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "low" / "__init__.py").write_text("")
    (pkg / "high" / "__init__.py").write_text("")
    (pkg / "low" / "a.py").write_text("def f():\n    from pkg.low import b\n")
    (pkg / "low" / "b.py").write_text("from . import a\nfrom ..high.c import thing\n")
    (pkg / "high" / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.high.d import X\nthing = 1\n"
    )
    (pkg / "high" / "d.py").write_text("import pkg.high.c\nclass X: ...\n")
    found = ImportGraph.of(tmp_path, "pkg")
    assert found.circles() == [["pkg.high.c", "pkg.high.d"], ["pkg.low.a", "pkg.low.b"]]
    assert found.arrows("pkg.low", "pkg.high") == [("pkg.low.b", "pkg.high.c")]
    assert found.arrows("pkg.high", "pkg.low") == []
