"""The import graph of a package tree, read with ``ast`` (nothing is imported): every
``import`` and ``from ... import`` counts, at module level, inside functions and under
``if TYPE_CHECKING:`` alike, since each is an arrow in the design."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ImportGraph:
    modules: dict[str, Path]
    """Dotted module name -> file (a package is named by its ``__init__.py``)."""
    edges: dict[str, frozenset[str]]
    """Module -> the modules of the tree it imports."""

    @classmethod
    def of(cls, root: Path, package: str, *, skip: tuple[str, ...] = ()) -> ImportGraph:
        """The graph of ``root/package``; folders named in ``skip`` are left out."""
        modules: dict[str, Path] = {}
        for path in sorted((root / package).rglob("*.py")):
            if any(part in skip for part in path.relative_to(root).parts):
                continue
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
        edges = {
            name: frozenset(_imports(name, path, modules, package)) - {name} for name, path in modules.items()
        }
        return cls(modules, edges)

    def circles(self) -> list[list[str]]:
        """Strongly connected components of more than one module (Tarjan), sorted."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        found: list[list[str]] = []

        def visit(node: str) -> None:
            index[node] = low[node] = len(index)
            stack.append(node)
            on_stack.add(node)
            for target in sorted(self.edges[node]):
                if target not in index:
                    visit(target)
                    low[node] = min(low[node], low[target])
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

        for node in sorted(self.modules):
            if node not in index:
                visit(node)
        return sorted(found)

    def arrows(self, source: str, target: str) -> list[tuple[str, str]]:
        """Imports from modules in package ``source`` to modules in package ``target``."""
        return sorted(
            (a, b)
            for a, targets in self.edges.items()
            for b in targets
            if _within(a, source) and _within(b, target)
        )


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _imports(name: str, path: Path, modules: dict[str, Path], package: str) -> set[str]:
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if is_package else name.split(".")[:-1]
                here = here[: len(here) - (node.level - 1)]
                base = ".".join([*here, base] if base else here)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in modules else base)
    resolved = set()
    for target in found:
        if not _within(target, package):
            continue
        while target and target not in modules:
            target = target.rpartition(".")[0]
        # A package's own __init__ runs before its submodules: not an arrow worth drawing.
        if target and not (modules[target].name == "__init__.py" and _within(name, target)):
            resolved.add(target)
    return resolved
