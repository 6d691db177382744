"""The networks, one module each: ``<name>.py`` defines ``build() -> keras.Model``.

The file's name is the model's name in ``params.yaml`` (``models.<name>``) and in every output
(``models/<name>.keras``, ``reports/*/<name>/``). ``train@<name>`` depends on its own file and
on the shared blocks of :mod:`intro_cnn.models`, so editing one network retrains that network
only. A new model is a new file here and its entry in ``params.yaml``;
``tests/project/test_extend.py`` adds one.
"""

from __future__ import annotations

from pathlib import Path

# One module per network: the package, the folder as a user (and dvc.yaml) names it, its files.
ARCHITECTURES_PACKAGE = "intro_cnn.architectures"
ARCHITECTURES_DIR = ARCHITECTURES_PACKAGE.replace(".", "/")
ARCHITECTURES = Path(__file__).resolve().parent


def new_model_hint(name: str) -> str:
    """How to define a model called ``name``."""
    return f"add {ARCHITECTURES_DIR}/{name}.py with a build() returning a keras.Model"


def model_names() -> list[str]:
    """The networks defined in :data:`ARCHITECTURES` (file names, sorted), without importing
    them."""
    return sorted(
        path.stem
        for path in ARCHITECTURES.glob("*.py")
        if path.stem.isidentifier() and not path.stem.startswith("_")
    )
