"""The notebook's files and root: the jupytext pair agrees, and the root is found from the
environment or from the folder the notebook runs in."""

from __future__ import annotations

from pathlib import Path

import jupytext
import pytest

from intro_cnn.notebook import project
from intro_cnn.runtime.errors import StageError
from tests.conftest import ROOT


def test_the_script_and_the_notebook_have_the_same_cells():
    script = jupytext.read(ROOT / project.NOTEBOOK_SCRIPT)
    notebook = jupytext.read(ROOT / project.NOTEBOOK)
    assert [(c.cell_type, c.source) for c in script.cells] == [
        (c.cell_type, c.source) for c in notebook.cells
    ], f"run `jupytext --sync {project.NOTEBOOK_SCRIPT}`"
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    assert "ipynb" in notebook.metadata["jupytext"]["formats"]


def test_the_committed_notebook_has_no_outputs():
    notebook = jupytext.read(ROOT / project.NOTEBOOK)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)


def test_the_parameters_cell_does_not_train():
    notebook = jupytext.read(ROOT / project.NOTEBOOK)
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert "ENTRENAR = False" in tagged[0].source.splitlines()


def _project(folder):
    folder.mkdir(parents=True)
    for name in project.ROOT_MARKERS:
        (folder / name).write_text("", encoding="utf-8")
    return folder


def test_the_root_is_found_from_the_notebooks_folder(tmp_path):
    root = _project(tmp_path / "repo")
    (root / project.NOTEBOOKS_DIR).mkdir()
    assert project.find_root(root / project.NOTEBOOKS_DIR, environ={}) == root.resolve()
    assert project.find_root(root, environ={}) == root.resolve()


def test_the_environment_names_the_root(tmp_path):
    root = _project(tmp_path / "elsewhere")
    here = tmp_path / "not-a-project"
    here.mkdir()
    assert project.find_root(here, environ={project.ROOT_ENV: str(root)}) == root.resolve()
    with pytest.raises(StageError, match=project.ROOT_ENV):
        project.find_root(root, environ={project.ROOT_ENV: str(here)})


def test_no_root_says_how_to_point_at_one(tmp_path):
    with pytest.raises(StageError, match="make notebook"):
        project.find_root(tmp_path, environ={})


def test_entering_the_root_moves_the_process_there(tmp_path, monkeypatch):
    root = _project(tmp_path / "repo")
    (root / "notebooks").mkdir()
    monkeypatch.delenv(project.ROOT_ENV, raising=False)
    monkeypatch.chdir(root / "notebooks")
    assert project.enter_root() == root.resolve()
    assert Path.cwd() == root.resolve()
