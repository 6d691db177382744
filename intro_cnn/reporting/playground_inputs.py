"""What the report's convolution playground computes on: the demo image and the random walk.

The playground (``intro_cnn/reporting/playground.py`` and its script) convolves in the reader's
browser, live, as the kernel changes. It needs the numbers the static figures start from:
the demo image, reduced so that the longest side is at most :data:`MAX_SIDE` pixels (a 15×15
kernel over the full 600×799 image, colour and grey, would take the page about a second per
change), and the random walk. The ``convolutions`` stage writes them to
``reports/figures/convolutions/playground.json``; the report embeds that file.

Pure: arrays in, a JSON-ready dict out (:func:`playground_data`); :func:`read` is its one reader.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from intro_cnn import config
from intro_cnn.runtime import files

MAX_SIDE = 320  # longest side of the playground's copy of the demo image, in pixels
KEYS = ("image", "walk", "gaussian")


def reduce_image(image: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    """``image`` (``(H, W, 3)`` uint8) shrunk so its longest side is at most ``max_side``
    (Lanczos, aspect ratio kept); returned unchanged when it is small enough already."""
    from PIL import Image

    image = np.asarray(image, dtype=np.uint8)
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def notebook_sigma(taps: int, halfwidth: float) -> float:
    """The standard deviation, in taps, of the notebook's Gaussian.

    :func:`~intro_cnn.demos.convolutions.gaussian_1d` samples ``exp(-x**2)`` at ``taps`` points
    on ``[-halfwidth, halfwidth]``, a step ``d = 2 * halfwidth / (taps - 1)`` apart: tap ``k``
    from the centre weighs ``exp(-(k * d)**2) = exp(-k**2 / (2 * sigma**2))`` with
    ``sigma = 1 / (sqrt(2) * d)``. The playground's Gaussian of that size and sigma is the
    notebook's filter.
    """
    if taps < 2:
        return 1.0
    return (taps - 1) / (2 * math.sqrt(2) * halfwidth)


def playground_data(arrays: Mapping[str, np.ndarray], cfg: config.ConvolutionsConfig) -> dict:
    """The playground's inputs from :func:`~intro_cnn.demos.convolutions.compute_all`'s arrays:
    the reduced image as base64 RGB bytes (row by row), the walk, the notebook's Gaussian."""
    small = reduce_image(arrays["image"])
    height, width = small.shape[:2]
    full_height, full_width = np.asarray(arrays["image"]).shape[:2]
    return {
        "image": {
            "width": int(width),
            "height": int(height),
            "full_size": [int(full_width), int(full_height)],
            "rgb": base64.b64encode(np.ascontiguousarray(small).tobytes()).decode("ascii"),
        },
        # repr() round trip: the page reads back exactly these doubles.
        "walk": [float(v) for v in arrays["walk"]],
        "gaussian": {
            "taps": int(cfg.gauss_taps),
            "halfwidth": float(cfg.gauss_halfwidth),
            "sigma": notebook_sigma(cfg.gauss_taps, cfg.gauss_halfwidth),
        },
    }


def image_array(data: Mapping[str, Any]) -> np.ndarray:
    """The ``(H, W, 3)`` uint8 image of :func:`playground_data`'s output."""
    image = data["image"]
    raw = np.frombuffer(base64.b64decode(image["rgb"]), dtype=np.uint8)
    return raw.reshape(image["height"], image["width"], 3)


def read(path: Path = config.CONV_PLAYGROUND) -> dict[str, Any]:
    """The playground file the ``convolutions`` stage wrote, checked for its parts (a
    ValueError names what is wrong and the stage that rewrites it)."""
    fix = "rerun `dvc repro convolutions --force`"
    try:
        data = files.read_json(files.require(path, "dvc repro convolutions"))
    except ValueError as exc:  # json.JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{path} is not a JSON file ({exc}): {fix}.") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds {type(data).__name__}, not an object: {fix}.")
    missing = [k for k in KEYS if k not in data]
    try:
        image_array(data)
    except (KeyError, TypeError, ValueError) as exc:
        missing.append(f"a readable image ({exc})")
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}: {fix}.")
    return data
