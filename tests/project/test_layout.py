"""The architecture the folder tree shows: thin DVC stages over one library package.

- ``stages/`` holds the DVC stages' entry points only, each short, none importing another;
- ``intro_cnn/`` never imports ``stages``, has no import cycle (lazy imports included) and no
  module over 400 lines;
- every stage of ``dvc.yaml`` depends on exactly the library sub-packages its entry point
  reaches through imports (followed transitively), so editing a module reruns every stage that
  runs it and nothing hand-listed goes stale; a network's own file is a dependency of its
  training alone.
"""

from __future__ import annotations

import pytest
import yaml

from intro_cnn import architectures, config
from scripts.import_graph import (
    PACKAGE,
    PER_FILE,
    STAGES,
    dependency_path,
    find_cycle,
    imports,
    module_file,
    project_modules,
    reached,
)
from tests.conftest import ROOT

MAX_STAGE_LINES = 80
MAX_MODULE_LINES = 400


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


@pytest.mark.parametrize("module", project_modules(PACKAGE))
def test_a_library_module_owns_one_concern_in_at_most_400_lines(module):
    lines = module_file(module).read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_MODULE_LINES, f"{module} has {lines} lines: split it by concern"


def test_the_library_never_imports_the_stages():
    offenders = {
        m: sorted(i for i in imports(m) if i.split(".")[0] == STAGES)
        for m in project_modules(PACKAGE)
    }
    assert {m: i for m, i in offenders.items() if i} == {}


def test_find_cycle_finds_one_and_only_one():
    assert find_cycle({"a": frozenset({"b"}), "b": frozenset({"c"})}) is None
    cycle = find_cycle({"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"})})
    assert cycle == ["a", "b", "c", "a"]


def test_the_library_has_no_import_cycle():
    graph = {m: imports(m) for m in project_modules(PACKAGE)}
    assert find_cycle(graph) is None


def test_each_stage_depends_on_the_sub_packages_it_imports_and_no_others():
    params = config.load_params(ROOT / config.PARAMS_FILE)
    for name, stage in dvc_stages().items():
        body = stage.get("do", stage)
        keys: list[str | None] = [None]
        placeholder = "${key}"
        if "do" in stage:  # foreach over the models
            keys = list(params.models)
        elif "matrix" in stage:  # model x seed: the model decides the imports
            keys, placeholder = list(params.replicates.models), "${item.model}"
        entry = body["cmd"].split()[2]
        listed = {d for d in body["deps"] if d.split("/")[0] in (PACKAGE, STAGES)}
        for key in keys:
            needed = {dependency_path(m, key, placeholder) for m in reached(entry, key)}
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
