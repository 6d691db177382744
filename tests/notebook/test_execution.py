"""The notebook top to bottom in a real kernel of this environment, against a trained copy of
the project (the ``trained_repo`` fixture), with its optional retraining switched on."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import nbformat
import pytest

from intro_cnn.notebook import project
from tests.conftest import ROOT

CELL_TIMEOUT = 300  # seconds per cell; the retraining on the subset takes a few
FIGURE_CALL = "mostrar("  # every cell that draws passes its figure through this
PNG = "image/png"
KERNEL_CHECK = "import sys\nprint(sys.executable)"


def with_training(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook with ``ENTRENAR = True`` in its parameters cell, and a last cell that
    prints the kernel's interpreter."""
    (cell,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert "ENTRENAR = False" in cell.source
    cell.source = cell.source.replace("ENTRENAR = False", "ENTRENAR = True")
    notebook.cells.append(nbformat.v4.new_code_cell(KERNEL_CHECK))
    return notebook


def outputs_of(cell: nbformat.NotebookNode, kind: str) -> list:
    return [o for o in cell.get("outputs", []) if kind in o.get("data", {})]


@pytest.mark.slow
@pytest.mark.pipeline
def test_the_notebook_runs_top_to_bottom_against_the_pipeline(
    trained_repo: Path, monkeypatch, record_property
):
    from nbclient import NotebookClient

    folder = trained_repo / project.NOTEBOOKS_DIR
    folder.mkdir(exist_ok=True)
    shutil.copy2(ROOT / project.NOTEBOOK, folder / project.NOTEBOOK.name)
    notebook = with_training(nbformat.read(folder / project.NOTEBOOK.name, as_version=4))
    monkeypatch.delenv(project.ROOT_ENV, raising=False)  # found from the notebook's folder

    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(folder)}},
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first cell that fails
    seconds = time.perf_counter() - start
    record_property("notebook_seconds", round(seconds, 1))

    code = [c for c in notebook.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors
    drawing = [c for c in code if FIGURE_CALL in c.source and "def " not in c.source]
    silent = [c.source.splitlines()[0] for c in drawing if not outputs_of(c, PNG)]
    assert not silent, f"cells that drew no figure: {silent}"
    n_png = sum(len(outputs_of(c, PNG)) for c in code)
    assert n_png >= len(drawing) >= 15

    text = "".join(o.get("text", "") for c in code for o in c.outputs if o.output_type == "stream")
    assert "El pipeline ya se ha ejecutado" in text
    assert "¿igual que el pipeline? False" not in text
    assert "semillas (1, 2)" in text  # the subset project trains two seeds
    assert "Precisión en prueba de cnn_small: pipeline" in text  # the retraining ran
    kernel_python = code[-1].outputs[0]["text"].strip()
    assert Path(kernel_python).parent == Path(sys.executable).parent
    print(f"notebook executed in {seconds:.1f} s: {len(code)} code cells, {n_png} PNG outputs")
