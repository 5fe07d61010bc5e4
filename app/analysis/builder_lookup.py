"""Does a builder path like ``pytorchvideo.models.hub.x3d_s`` exist? Answered without importing.

The catalog is read by the API, which must never import torch (and pytorchvideo imports
it). So the lookup finds the module's source file the way the import system would and
reads its top-level names with ``ast``. When pytorchvideo is not installed here (an
API-only image) or a module hides its names (star imports, ``__getattr__``), the answer
is UNKNOWN and the worker's real import decides at load time.
"""

from __future__ import annotations

import ast
import importlib.util
from enum import Enum
from functools import cache
from pathlib import Path


class BuilderLookup(Enum):
    FOUND = "found"
    MISSING = "missing"
    UNKNOWN = "unknown"


@cache
def lookup_builder(dotted: str) -> BuilderLookup:
    """Whether ``dotted`` (``package.module.function``) names a top-level function or class."""
    module_name, _, attr = dotted.rpartition(".")
    top, *subpackages = module_name.split(".")
    try:
        spec = importlib.util.find_spec(top)  # a top-level name: nothing is imported
    except (ImportError, ValueError):
        return BuilderLookup.UNKNOWN
    if spec is None or not spec.submodule_search_locations:
        return BuilderLookup.UNKNOWN
    source = _module_source([Path(p) for p in spec.submodule_search_locations], subpackages)
    if source is None:
        return BuilderLookup.MISSING
    names = _top_level_names(source)
    if names is None:
        return BuilderLookup.UNKNOWN
    return BuilderLookup.FOUND if attr in names else BuilderLookup.MISSING


def _module_source(roots: list[Path], parts: list[str]) -> Path | None:
    """The ``__init__.py`` or ``.py`` file of ``top.parts...`` under the package's roots."""
    for root in roots:
        here = root
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if (here / part / "__init__.py").is_file():
                here = here / part
            elif last and (here / f"{part}.py").is_file():
                return here / f"{part}.py"
            else:
                break
        else:
            init = here / "__init__.py"
            if init.is_file():
                return init
    return None


def _top_level_names(path: Path) -> set[str] | None:
    """Names a module binds at top level (inside top-level if/try too); None when it cannot
    be told statically."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return None
    names: set[str] = set()
    if not _bind(tree.body, names):
        return None
    return None if "__getattr__" in names else names


def _bind(statements: list[ast.stmt], names: set[str]) -> bool:
    """Add the names ``statements`` bind; False on a star import."""
    for node in statements:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            if any(alias.name == "*" for alias in node.names):
                return False
            names.update(alias.asname or alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.If | ast.Try | ast.With):
            blocks = [node.body, getattr(node, "orelse", []), getattr(node, "finalbody", [])]
            blocks += [handler.body for handler in getattr(node, "handlers", [])]
            if not all(_bind(block, names) for block in blocks):
                return False
    return True
