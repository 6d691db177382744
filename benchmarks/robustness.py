"""How well does ``python -m intro_cnn.commands.predict`` read digits as users send them?

Takes the MNIST test digits, renders each as a user would submit it (a larger canvas, dark ink
on light paper, off-centre, rescaled, slightly rotated, JPEG-compressed), runs them through the
predict path (the MNIST recipe of intro_cnn/data/digits.py, then the network) and compares the
accuracy with the plain test accuracy (the 28×28 tensors straight into the network). One
transformation at a time, then all together.

    python benchmarks/robustness.py                       # models/cnn.keras, all 10 000 digits
    python benchmarks/robustness.py --model models/cnn_small.keras --n 2000 --seed 2

Prints one line per transformation; results for the committed model are in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from intro_cnn import config
from intro_cnn.data import digits


@dataclass(frozen=True)
class Render:
    """How one digit is drawn on its sheet."""

    canvas: int = 300  # the sheet's side, px
    height: int = 160  # the MNIST 28×28 field's side once enlarged, px (digit ≈ 20/28 of it)
    centre: tuple[float, float] = (0.5, 0.5)  # where the field's centre lies, fraction of sheet
    angle: float = 0.0  # degrees, counter-clockwise
    jpeg: int | None = None  # JPEG quality, None = lossless
    paper: int = 235  # grey level of the paper
    ink: int = 30  # grey level of the darkest ink


def render(image: np.ndarray, r: Render) -> np.ndarray:
    """An MNIST uint8 digit (light on black) as dark ink on a sheet, greyscale in [0, 1]."""
    field = Image.fromarray(image).resize((r.height, r.height), Image.BICUBIC)
    if r.angle:
        field = field.rotate(r.angle, resample=Image.BICUBIC, expand=True, fillcolor=0)
    strength = np.asarray(field, dtype=np.float32) / 255.0
    sheet = np.full((r.canvas, r.canvas), float(r.paper), dtype=np.float32)
    h, w = strength.shape
    top = int(np.clip(round(r.centre[0] * r.canvas - h / 2), 0, max(r.canvas - h, 0)))
    left = int(np.clip(round(r.centre[1] * r.canvas - w / 2), 0, max(r.canvas - w, 0)))
    patch = strength[: r.canvas - top, : r.canvas - left]
    region = sheet[top : top + patch.shape[0], left : left + patch.shape[1]]
    region -= (r.paper - r.ink) * patch
    pixels = np.clip(np.round(sheet), 0, 255).astype(np.uint8)
    if r.jpeg is not None:
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG", quality=r.jpeg)
        pixels = np.asarray(Image.open(buf).convert("L"))
    return pixels.astype(np.float32) / 255.0


def _centre(rng: np.random.Generator, canvas: int, height: int) -> tuple[float, float]:
    # Anywhere the digit's ink (the middle 20/28 of the field) stays on the sheet.
    margin = 0.5 * height * 20 / 28 / canvas
    return tuple(float(v) for v in rng.uniform(margin, 1 - margin, size=2))


def _any(rng: np.random.Generator) -> Render:
    canvas = int(rng.integers(200, 401))
    height = int(rng.integers(canvas // 4, int(canvas * 0.9)))
    return Render(
        canvas=canvas,
        height=height,
        centre=_centre(rng, canvas, height),
        angle=float(rng.uniform(-10, 10)),
        jpeg=int(rng.integers(40, 91)),
        paper=int(rng.integers(190, 256)),
        ink=int(rng.integers(0, 80)),
    )


# name -> how to draw one digit (a fresh random draw per digit)
TRANSFORMS: dict[str, Callable[[np.random.Generator], Render]] = {
    "canvas 300 px, centred, ink on paper": lambda rng: Render(),
    "off-centre": lambda rng: Render(centre=_centre(rng, 300, 160)),
    "rescaled (field 60-270 px)": lambda rng: Render(height=int(rng.integers(60, 271))),
    "rotated (±10°)": lambda rng: Render(angle=float(rng.uniform(-10, 10))),
    "JPEG (quality 40-90)": lambda rng: Render(jpeg=int(rng.integers(40, 91))),
    "all of them (canvas 200-400 px, levels varied)": _any,
}


def accuracy(model, images: np.ndarray, labels: np.ndarray) -> float:
    from intro_cnn.commands.predict import classify

    probs = np.concatenate(
        [classify(model, images[i : i + 500]) for i in range(0, len(images), 500)]
    )
    return float((probs.argmax(axis=1) == labels).mean())


def row(name: str, acc: float, plain: float, seconds: float) -> None:
    print(f"{name:<50} {acc:>9.4f} {100 * (acc - plain):>+8.2f}p {seconds:>6.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(config.model_path("cnn")), help=".keras file")
    parser.add_argument("--mnist", default=str(config.RAW_MNIST), help="Keras-layout mnist.npz")
    parser.add_argument("--n", type=int, default=10_000, help="test digits used (first N)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    model = keras.saving.load_model(args.model, compile=False)
    with np.load(args.mnist) as data:
        x, y = data["x_test"][: args.n], data["y_test"][: args.n]
    plain = accuracy(model, x.astype(np.float32) / 255.0, y)
    print(f"model {args.model}, {len(y)} MNIST test digits, seed {args.seed}")
    print(f"{'transformation':<50} {'accuracy':>9} {'vs plain':>9} {'s':>6}")
    print(f"{'plain test tensors (no recipe)':<50} {plain:>9.4f} {'':>9} {'':>6}")
    start = time.perf_counter()
    recipe = np.stack([digits.prepare(i.astype(np.float32) / 255.0).image for i in x])
    acc = accuracy(model, recipe, y)
    seconds = time.perf_counter() - start
    row("recipe on the 28×28 digits", acc, plain, seconds)
    for name, draw in TRANSFORMS.items():
        rng = np.random.default_rng(args.seed)
        start = time.perf_counter()
        prepared = np.stack([digits.prepare(render(image, draw(rng))).image for image in x])
        row(name, accuracy(model, prepared, y), plain, time.perf_counter() - start)
    # Why the recipe: the same sheets as the last row, only shrunk to 28×28 and inverted.
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    naive = np.stack([1.0 - digits.resize_area(render(i, _any(rng)), 28, 28) for i in x])
    row(
        "all of them, without the recipe (shrink, invert)",
        accuracy(model, naive, y),
        plain,
        time.perf_counter() - start,
    )


if __name__ == "__main__":
    main()
