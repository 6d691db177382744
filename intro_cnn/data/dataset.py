"""The processed MNIST arrays as every consumer reads them (the preprocess stage writes them).

``config.PROCESSED_MNIST`` holds ``x_train``, ``y_train``, ``x_val``, ``y_val``, ``x_test`` and
``y_test``: float32 images ``(N, 28, 28, 1)`` in [0, 1] and uint8 labels 0-9.
"""

from __future__ import annotations

import numpy as np

from intro_cnn import config

NUM_CLASSES = 10


def one_hot(y: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Integer labels → float32 one-hot rows (for categorical cross-entropy)."""
    return np.eye(num_classes, dtype=np.float32)[np.asarray(y, dtype=np.int64)]


def load_processed(path: str = str(config.PROCESSED_MNIST)) -> dict[str, np.ndarray]:
    """Read the processed splits the preprocess stage wrote."""
    with np.load(path) as data:
        return {k: data[k] for k in data.files}
