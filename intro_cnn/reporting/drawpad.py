"""The report's drawing pad: draw a digit, watch the ``cnn`` classify it, layer by layer.

The page runs the network itself (``intro_cnn/reporting/assets/pad.js``): the weights are read here
straight from the ``.keras`` file (a zip holding ``config.json`` and ``model.weights.h5``;
no TensorFlow needed), embedded in the page as base64 float32, and a small readable forward
pass (convolution, ReLU, max pooling, dense, softmax) runs as you draw. The drawing goes
through the same MNIST recipe as ``python -m intro_cnn.commands.predict``
(:mod:`intro_cnn.data.digits`, ported line by line to JavaScript; its constants come from that
module).

Without JavaScript the section stays hidden and the rest of the page reads the same.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from intro_cnn import i18n
from intro_cnn.data import digits
from intro_cnn.reporting import inline

PAD_MODEL = "cnn"  # the network the pad runs
ASSETS = "pad"  # assets/pad.js and assets/pad.css
SECTION_ID = "pad"
DATA_ID = "pad-model"

# Keras layer classes the page's forward pass implements, with the options it supports.
SUPPORTED = ("InputLayer", "Conv2D", "MaxPooling2D", "Flatten", "Dense")
ACTIVATIONS = ("linear", "relu", "softmax")


class PadError(ValueError):
    """The model file cannot be run by the page (the message says why and what to do)."""


@dataclass(frozen=True)
class PadLayer:
    """One layer as the page computes it."""

    kind: str  # "conv", "pool", "flatten" or "dense"
    name: str
    activation: str = "linear"
    pool: int = 0
    weights: tuple[np.ndarray, ...] = ()  # kernel and bias, float32


def _snake(name: str) -> str:
    """Keras' automatic object name of a class (Conv2D → conv2d, MaxPooling2D →
    max_pooling2d): the key of a layer's variables in ``model.weights.h5``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def read_keras_file(path: Path) -> list[PadLayer]:
    """The layers of a saved Keras model, for the page's forward pass (no TensorFlow)."""
    import h5py

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            weights_h5 = archive.read("model.weights.h5")
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise PadError(f"{path}: not a readable .keras file ({exc}). Retrain the model.") from None
    seen: dict[str, int] = {}
    layers: list[PadLayer] = []
    with h5py.File(io.BytesIO(weights_h5), "r") as h5:
        for entry in config["config"]["layers"]:
            cls, cfg = entry["class_name"], entry["config"]
            if cls not in SUPPORTED:
                raise PadError(
                    f"{path}: layer {cfg['name']!r} is a {cls}; the drawing pad computes only "
                    f"{', '.join(SUPPORTED)}. Use a model built from those (e.g. cnn)."
                )
            base = _snake(cls)
            count = seen.get(base, 0)
            seen[base] = count + 1
            key = f"layers/{base}" + (f"_{count}" if count else "") + "/vars"
            arrays = tuple(
                np.asarray(h5[f"{key}/{i}"], dtype=np.float32) for i in range(len(h5.get(key, {})))
            )
            activation = cfg.get("activation", "linear")
            if activation not in ACTIVATIONS:
                raise PadError(f"{path}: activation {activation!r} of {cfg['name']!r} unsupported.")
            if cls == "Conv2D":
                ok = cfg["padding"] == "valid" and list(cfg["strides"]) == [1, 1]
                if not ok or len(arrays) != 2 or arrays[0].shape[3] != cfg["filters"]:
                    raise PadError(f"{path}: {cfg['name']!r} is not a valid-padding 3×3 conv.")
                layers.append(PadLayer("conv", cfg["name"], activation, weights=arrays))
            elif cls == "MaxPooling2D":
                size = cfg["pool_size"][0]
                if list(cfg["pool_size"]) != [size, size] or list(cfg["strides"]) != [size] * 2:
                    raise PadError(f"{path}: {cfg['name']!r} is not a square max pooling.")
                layers.append(PadLayer("pool", cfg["name"], pool=size))
            elif cls == "Flatten":
                layers.append(PadLayer("flatten", cfg["name"]))
            elif cls == "Dense":
                if len(arrays) != 2 or arrays[0].shape[1] != cfg["units"]:
                    raise PadError(f"{path}: {cfg['name']!r} weights do not match its config.")
                layers.append(PadLayer("dense", cfg["name"], activation, weights=arrays))
    return layers


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode("ascii")


def page_data(layers: Sequence[PadLayer], lang: str) -> dict[str, Any]:
    """What the script reads: the recipe's constants, the texts, the layers with weights."""
    out = []
    for layer in layers:
        item: dict[str, Any] = {"kind": layer.kind, "name": layer.name}
        if layer.kind in ("conv", "dense"):
            kernel, bias = layer.weights
            item.update(
                activation=layer.activation,
                shape=list(kernel.shape),
                kernel=_b64(kernel),
                bias=_b64(bias),
            )
        elif layer.kind == "pool":
            item["size"] = layer.pool
        out.append(item)
    recipe = {
        "size": digits.SIZE,
        "box": digits.BOX,
        "centre": digits.CENTRE,
        "inkThreshold": digits.INK_THRESHOLD,
        "blankContrast": digits.BLANK_CONTRAST,
        "minInk": digits.MIN_INK,
    }
    return {"recipe": recipe, "text": i18n.section("pad", lang), "layers": out}


def section(layers: Sequence[PadLayer], lang: str, script: str) -> str:
    """The pad's HTML: hidden until the script shows it (so without JS nothing changes)."""
    t = i18n.section("pad", lang)
    esc = html.escape
    return (
        f'<section id="{SECTION_ID}" hidden><h2>{esc(t["title"])}</h2>'
        f"<p>{esc(t['intro'])}</p>"
        '<div class="pad-row"><div class="pad-draw">'
        f'<canvas id="pad-canvas" width="280" height="280" aria-label="{esc(t["canvas"])}">'
        "</canvas>"
        f'<button type="button" id="pad-clear">{esc(t["clear"])}</button></div>'
        f'<div class="pad-side"><div class="pad-input"><span>{esc(t["input"])}</span>'
        '<canvas id="pad-input" width="28" height="28"></canvas></div>'
        f'<p class="pad-answer">{esc(t["prediction"])}: <b id="pad-digit">–</b> '
        '<span id="pad-confidence"></span></p>'
        f'<div id="pad-bars" aria-label="{esc(t["probabilities"])}"></div>'
        f'<p id="pad-status" class="note">{esc(t["empty"])}</p></div></div>'
        f'<h3>{esc(t["maps1"])}</h3><div id="pad-maps1" class="pad-maps"></div>'
        f'<h3>{esc(t["maps2"])}</h3><div id="pad-maps2" class="pad-maps"></div>'
        f"{inline.data_and_script(DATA_ID, page_data(layers, lang), script)}</section>"
    )


def read_assets() -> tuple[str, str]:
    """The pad's script and style sheet, inlined by the report."""
    return inline.read_assets(ASSETS)
