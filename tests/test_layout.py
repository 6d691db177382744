"""The architecture the folder tree shows: thin DVC stages over one library package.

- ``stages/`` holds the DVC stages' entry points only, each short, none importing another;
- ``intro_cnn/`` never imports ``stages``, and has no import cycle (lazy imports included);
- every stage of ``dvc.yaml`` depends on exactly the library sub-packages its entry point
  reaches through imports (followed transitively), so editing a module reruns every stage that
  runs it and nothing hand-listed goes stale; a network's own file is a dependency of its
  training alone.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest
import yaml

from intro_cnn import architectures, config
from tests.conftest import ROOT

PACKAGE = "intro_cnn"
STAGES = "stages"
MAX_STAGE_LINES = 80
# A sub-package whose modules are dependencies one by one: the network registry and the
# networks (``train@<name>`` depends on its own network only).
PER_FILE = architectures.ARCHITECTURES_PACKAGE


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


def dependency_path(module: str, key: str | None) -> str:
    """The ``dvc.yaml`` dependency that covers ``module``: its sub-package folder, or its own
    file in the per-file sub-package (``${key}`` for the stage's own network)."""
    parts = module.split(".")
    if module.startswith(PER_FILE + "."):
        name = parts[-1]
        return f"{PER_FILE.replace('.', '/')}/{'${key}' if name == key else name}.py"
    if module == PER_FILE:
        return f"{PER_FILE.replace('.', '/')}/__init__.py"
    if parts[0] == STAGES:
        return f"{module_file(module).relative_to(ROOT)}"
    return "/".join(parts[:2])


def dvc_stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def test_stages_holds_only_the_dvc_stages_entry_points():
    entry_points = {stage.get("do", stage)["cmd"].split()[2] for stage in dvc_stages().values()}
    modules = {m for m in project_modules(STAGES) if m != STAGES}
    assert modules == entry_points


@pytest.mark.parametrize("module", [m for m in project_modules(STAGES) if m != STAGES])
def test_a_stage_is_short_and_imports_only_the_library(module):
    lines = module_file(module).read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_STAGE_LINES, f"{module} has {lines} lines: move its work into {PACKAGE}"
    others = {m for m in imports(module) if m.split(".")[0] == STAGES}
    assert not others, f"{module} imports {sorted(others)}: stages share code through {PACKAGE}"


def test_the_library_never_imports_the_stages():
    offenders = {
        m: sorted(i for i in imports(m) if i.split(".")[0] == STAGES)
        for m in project_modules(PACKAGE)
    }
    assert {m: i for m, i in offenders.items() if i} == {}


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


def test_find_cycle_finds_one_and_only_one():
    assert find_cycle({"a": frozenset({"b"}), "b": frozenset({"c"})}) is None
    cycle = find_cycle({"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"})})
    assert cycle == ["a", "b", "c", "a"]


def test_the_library_has_no_import_cycle():
    graph = {m: imports(m) for m in project_modules(PACKAGE)}
    assert find_cycle(graph) is None


def test_each_stage_depends_on_the_sub_packages_it_imports_and_no_others():
    for name, stage in dvc_stages().items():
        body = stage.get("do", stage)
        keys = (
            list(config.load_params(ROOT / config.PARAMS_FILE).models) if "do" in stage else [None]
        )
        entry = body["cmd"].split()[2]
        listed = {d for d in body["deps"] if d.split("/")[0] in (PACKAGE, STAGES)}
        for key in keys:
            needed = {dependency_path(m, key) for m in reached(entry, key)}
            assert listed == needed, (
                f"{name}: dvc.yaml lists {sorted(listed - needed)} that it does not import, "
                f"and misses {sorted(needed - listed)} that it does"
            )


def test_a_network_is_a_dependency_of_its_own_training_only():
    train = dvc_stages()["train"]["do"]
    per_file = [d for d in train["deps"] if d.startswith(architectures.ARCHITECTURES_DIR + "/")]
    assert sorted(per_file) == [
        f"{architectures.ARCHITECTURES_DIR}/${{key}}.py",
        f"{architectures.ARCHITECTURES_DIR}/__init__.py",
    ]
    for name in architectures.model_names():
        reach = reached(f"{PER_FILE}.{name}")
        others = {m for m in reach if m.startswith(PER_FILE + ".") and m != f"{PER_FILE}.{name}"}
        assert not others, f"{name}.py imports another network: {sorted(others)}"
