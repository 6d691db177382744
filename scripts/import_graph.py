"""The project's import graph, read from the sources (nothing is imported): which project
modules each module imports, transitively, and which ``dvc.yaml`` dependency covers a module.

tests/project/test_layout.py checks ``dvc.yaml`` and the layout with it; benchmarks/rerun_cost.py
measures what the sub-package dependencies cost in reruns.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "intro_cnn"
STAGES = "stages"
# The sub-package whose modules are dependencies one by one: the network registry and the
# networks (``train@<name>`` depends on its own network only).
PER_FILE = f"{PACKAGE}.architectures"


def module_file(module: str) -> Path | None:
    path = ROOT.joinpath(*module.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def project_modules(top: str) -> list[str]:
    """Every module of the package ``top``, dotted."""
    names = []
    for path in sorted((ROOT / top).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@cache
def imports(module: str) -> frozenset[str]:
    """The project modules ``module`` imports anywhere in its source (inside functions too):
    ``from a.b import c`` counts as ``a.b.c`` when that is a module, else as ``a.b``."""
    found = set()
    tree = ast.parse(module_file(module).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if module_file(sub) else node.module)
    return frozenset(m for m in found if m.split(".")[0] in (PACKAGE, STAGES) and module_file(m))


def imports_networks_by_name(module: str) -> bool:
    """Whether ``module`` imports a network module from its name (the model builder)."""
    source = module_file(module).read_text(encoding="utf-8")
    return 'import_module(f"{ARCHITECTURES_PACKAGE}.' in source


def reached(module: str, key: str | None = None) -> set[str]:
    """``module`` and every project module it imports, transitively; with ``key`` (a model of a
    ``foreach`` stage), the builder's import of that network by name too."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(imports(current))
            if key is not None and imports_networks_by_name(current):
                todo.append(f"{PER_FILE}.{key}")
    return seen


def dependency_path(module: str, key: str | None = None, placeholder: str = "${key}") -> str:
    """The ``dvc.yaml`` dependency that covers ``module``: its sub-package folder, or its own
    file in the per-file sub-package (``placeholder`` for the stage's own network: ``${key}``
    in a ``foreach`` stage, ``${item.model}`` in a ``matrix`` one)."""
    parts = module.split(".")
    per_file_dir = PER_FILE.replace(".", "/")
    if module.startswith(PER_FILE + "."):
        name = parts[-1]
        return f"{per_file_dir}/{placeholder if name == key else name}.py"
    if module == PER_FILE:
        return f"{per_file_dir}/__init__.py"
    if parts[0] == STAGES:
        return str(module_file(module).relative_to(ROOT))
    return "/".join(parts[:2])


def find_cycle(graph: dict[str, frozenset[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None
