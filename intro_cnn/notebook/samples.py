"""Made-up inputs the notebook demonstrates on: an MNIST digit turned into a "photo" of a
digit written on paper, for the recipe of :mod:`intro_cnn.data.digits` to undo."""

from __future__ import annotations

import numpy as np

PAPER = 0.92  # the paper's grey level (1 = white)
INK = 0.12  # the ink's


def as_photo(digit: np.ndarray, scale: int = 4, margin: tuple[int, int] = (30, 12)) -> np.ndarray:
    """``digit`` (28×28[×1], ink 1 on 0) as dark ink on light paper, ``scale`` times larger,
    off centre: ``margin`` rows of paper above it, and as many columns on the left; the same
    margins halved below and on the right. A greyscale image in [0, 1], as
    :func:`intro_cnn.data.digits.load_grey` reads a photo."""
    ink = np.kron(np.asarray(digit, dtype=np.float32).squeeze(), np.ones((scale, scale)))
    top, left = margin
    ink = np.pad(ink, ((top, top // 2), (left, left // 2)))
    return (PAPER - (PAPER - INK) * ink).astype(np.float32)
