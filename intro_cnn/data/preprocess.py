"""Stage ``preprocess``: raw MNIST → float32 images in [0, 1] with an explicit validation split.

The validation split has the semantics of Keras' ``fit(validation_split=0.1)``: the *last*
10 % of the training set, taken before any shuffling. Making it explicit lets every stage (and
the notebook-style benchmark) train and validate on exactly the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from intro_cnn import config
from intro_cnn.data.dataset import NUM_CLASSES
from intro_cnn.runtime import errors

SPLITS = ("train", "val", "test")


def to_float_images(x: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) → float32 (N, 28, 28, 1) in [0, 1]."""
    if x.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {x.dtype}")
    return (x.astype(np.float32) / np.float32(255.0))[..., np.newaxis]


def validation_cut(n: int, fraction: float) -> int:
    """Index where validation starts; Keras' rule: ``int(n * (1 - fraction))``."""
    cut = int(n * (1.0 - fraction))
    if not 0 < cut < n:
        raise ValueError(
            f"validation_split={fraction} leaves an empty train or validation set for {n} rows."
        )
    return cut


def split(raw: Mapping[str, np.ndarray], validation_split: float) -> dict[str, np.ndarray]:
    """Build the train / val / test arrays the models consume."""
    cut = validation_cut(len(raw["x_train"]), validation_split)
    x_train = to_float_images(raw["x_train"])
    y_train = np.asarray(raw["y_train"], dtype=np.uint8)
    return {
        "x_train": x_train[:cut],
        "y_train": y_train[:cut],
        "x_val": x_train[cut:],
        "y_val": y_train[cut:],
        "x_test": to_float_images(raw["x_test"]),
        "y_test": np.asarray(raw["y_test"], dtype=np.uint8),
    }


def summarize(data: Mapping[str, np.ndarray]) -> dict:
    """Counts per class per split and pixel statistics: small enough for ``dvc metrics``."""
    summary: dict = {}
    for name in SPLITS:
        x, y = data[f"x_{name}"], data[f"y_{name}"]
        counts = np.bincount(y, minlength=NUM_CLASSES)
        summary[name] = {
            "n": len(y),
            "pixel_mean": round(float(x.mean(dtype=np.float64)), 6),
            "pixel_std": round(float(x.std(dtype=np.float64)), 6),
            "per_class": {str(k): int(c) for k, c in enumerate(counts)},
        }
    return summary


def split_raw(path: Path, validation_split: float) -> dict[str, np.ndarray]:
    """The raw MNIST file at ``path`` read and split (:func:`split`); a missing, damaged or
    incomplete file is a StageError naming the fix."""
    try:
        with np.load(path) as raw:
            arrays = {k: raw[k] for k in config.MNIST_ARRAYS}
        return split(arrays, validation_split)
    except (OSError, KeyError, ValueError) as exc:
        raise errors.StageError(
            f"cannot preprocess {path}: {exc}. Rerun `dvc repro download`."
        ) from exc
