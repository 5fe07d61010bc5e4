"""The drawing of the error tree in ``app/errors.py`` is the map readers trust: it must name
every class of the module under its real parent (it once put VideoTooLong under AnalysisError)."""

from __future__ import annotations

import inspect
import re

import app.errors

_BRANCH = re.compile(r"^(?P<indent>[ │├└─]*)(?P<name>[A-Z]\w+)")
_LEVEL = 5  # characters per level: " ├── " / " │    "


def drawn_parents(doc: str) -> dict[str, str | None]:
    """Class name → its parent in the drawing (None for the root)."""
    parents: dict[str, str | None] = {}
    path: list[str] = []
    for line in doc.splitlines():
        match = _BRANCH.match(line)
        if match is None or (not match["indent"] and match["name"] != "ServiceError"):
            continue
        depth = len(match["indent"]) // _LEVEL
        path = [*path[:depth], match["name"]]
        parents[match["name"]] = path[-2] if depth else None
    return parents


def defined_parents() -> dict[str, str | None]:
    classes = inspect.getmembers(app.errors, inspect.isclass)
    return {
        name: None if cls.__base__ is Exception else cls.__base__.__name__
        for name, cls in classes
        if issubclass(cls, Exception) and cls.__module__ == app.errors.__name__
    }


def test_the_drawing_shows_every_error_class_under_its_parent() -> None:
    assert app.errors.__doc__ is not None
    assert drawn_parents(app.errors.__doc__) == defined_parents()


def test_the_parser_reads_each_parent_from_the_indent() -> None:
    drawing = "ServiceError\n ├── Ay   text\n │    └── Bee\n └── Cee\n      └── Dee   more text\n"
    expected = {"ServiceError": None, "Ay": "ServiceError", "Bee": "Ay", "Cee": "ServiceError", "Dee": "Cee"}
    assert drawn_parents(drawing) == expected
