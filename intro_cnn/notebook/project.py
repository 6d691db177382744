"""The notebook's files, and the project root its cells work in.

The pipeline's paths (:mod:`intro_cnn.config.paths`) are relative to the repository root, so
the notebook first moves there. It finds the root from :data:`ROOT_ENV` when set (a test runs
the notebook against a copy of the project), or from the folder it runs in, upwards. The
notebook's own paths live here rather than in ``intro_cnn.config``: no stage reads them, and
every DVC stage depends on that package, so a path added there would retrain every network.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from intro_cnn import config
from intro_cnn.runtime.errors import StageError

NOTEBOOKS_DIR = Path("notebooks")  # Jupyter Lab's root folder (make notebook)
NOTEBOOK_STEM = "introduccion_redes_convolucionales"
NOTEBOOK_SCRIPT = NOTEBOOKS_DIR / f"{NOTEBOOK_STEM}.py"  # jupytext percent format, the source
NOTEBOOK = NOTEBOOKS_DIR / f"{NOTEBOOK_STEM}.ipynb"  # its pair, outputs stripped
# Where the notebook works, when set; otherwise the first folder upwards that holds the files
# of ROOT_MARKERS.
ROOT_ENV = "INTRO_CNN_ROOT"
ROOT_MARKERS = (config.PARAMS_FILE, "dvc.yaml")


def is_root(folder: Path) -> bool:
    return all((folder / name).is_file() for name in ROOT_MARKERS)


def find_root(start: Path, environ: Mapping[str, str] = os.environ) -> Path:
    """The project root: ``environ[ROOT_ENV]`` when set, else ``start`` or the nearest folder
    above it holding ``params.yaml`` and ``dvc.yaml``; a StageError says how to point at one."""
    named = environ.get(ROOT_ENV, "").strip()
    if named:
        root = Path(named).expanduser().resolve()
        if not is_root(root):
            raise StageError(
                f"{ROOT_ENV}={named}: no {' and '.join(ROOT_MARKERS)} there; point it at the "
                "project's root folder."
            )
        return root
    start = start.resolve()
    for folder in (start, *start.parents):
        if is_root(folder):
            return folder
    raise StageError(
        f"No {' and '.join(ROOT_MARKERS)} in {start} or above it: open the notebook from the "
        f"project's {NOTEBOOKS_DIR}/ folder (make notebook), or set {ROOT_ENV}."
    )


def enter_root(start: Path | None = None) -> Path:
    """Move the process to :func:`find_root` (from the current folder unless ``start``) and
    return it: the notebook's first cell calls this, so that every relative path resolves."""
    root = find_root(Path.cwd() if start is None else start)
    os.chdir(root)
    return root
