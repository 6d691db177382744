"""The processed MNIST arrays as every consumer reads them (the preprocess stage writes them).

``config.PROCESSED_MNIST`` holds ``x_train``, ``y_train``, ``x_val``, ``y_val``, ``x_test`` and
``y_test``: float32 images ``(N, 28, 28, 1)`` in [0, 1] and uint8 labels 0-9.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from intro_cnn import config
from intro_cnn.runtime import files
from intro_cnn.runtime.errors import StageError

SPLITS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")

NUM_CLASSES = 10


def one_hot(y: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Integer labels → float32 one-hot rows (for categorical cross-entropy)."""
    return np.eye(num_classes, dtype=np.float32)[np.asarray(y, dtype=np.int64)]


def load_processed(
    keys: tuple[str, ...] = SPLITS, path: Path = config.PROCESSED_MNIST
) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of the processed splits the preprocess stage wrote, checked: images
    ``(N, 28, 28, 1)``, as many integer labels as images."""
    fix = "dvc repro preprocess"
    with np.load(files.require(path, fix)) as data:
        missing = set(keys) - set(data.files)
        if missing:
            raise StageError(f"{path} lacks {sorted(missing)}: rerun `{fix}` to rebuild it.")
        arrays = {k: data[k] for k in keys}
    for k in keys:
        if k.startswith("x_") and arrays[k].ndim != 4:
            raise StageError(
                f"{path}: expected {k} (N, 28, 28, 1), got {arrays[k].shape}; rerun `{fix}`."
            )
        if k.startswith("y_"):
            y = arrays[k]
            images = arrays.get("x_" + k[2:])
            if not np.issubdtype(y.dtype, np.integer) or (
                images is not None and len(images) != len(y)
            ):
                raise StageError(
                    f"{path}: expected as many integer labels {k} as images, got {y.dtype} "
                    f"{y.shape}; rerun `{fix}`."
                )
    return arrays
