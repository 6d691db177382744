"""Turn a photo or scan of one handwritten digit into an MNIST-like 28×28 input.

The MNIST recipe (LeCun et al.): the digit is light ink on a dark background, cropped to its
ink, scaled so that its longest side is 20 pixels (keeping the aspect ratio), and placed in a
28×28 field so that its centre of mass lies at the centre (pixel 14, 14: where the MNIST test
digits have theirs on average). Steps, each a pure function over arrays:

1. greyscale in [0, 1] (transparent pixels count as white paper);
2. invert when the background (the median of the border pixels) is light;
3. subtract the background level and stretch so the darkest ink is 1; faint specks below
   ``INK_THRESHOLD`` (JPEG noise, paper texture) become 0;
4. crop to the bounding box of the remaining ink;
5. area-average resize so the longest side is 20 px, then stretch the maximum back to 1;
6. centre by centre of mass in 28×28 (integer shift, kept inside the field).

``intro_cnn/reporting/assets/pad.js`` is a line-by-line port of this module (the report's drawing
pad), so a change here must be made there too; the report's consistency test compares them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SIZE = 28  # the network's input side
BOX = 20  # the longest side of the digit inside the field
CENTRE = 14.0  # where MNIST digits have their centre of mass (row and column index)
# Below this (after background removal and stretching) a pixel is paper, not ink.
INK_THRESHOLD = 0.2
# Below this contrast (max - min of the greyscale image) the image is blank.
BLANK_CONTRAST = 0.08
# Below this, the darkest mark is too faint to be ink (relative to the background).
MIN_INK = 0.15


class DigitError(ValueError):
    """The image cannot be turned into a digit (the message says why and what to do)."""


@dataclass(frozen=True)
class Prepared:
    """A preprocessed digit: the 28×28 input in [0, 1] and what the recipe decided."""

    image: np.ndarray  # float32 (28, 28), ink = 1, background = 0
    inverted: bool  # the source had a light background
    box: tuple[int, int, int, int]  # ink bounding box in the source: top, left, bottom, right


def load_grey(path: Path) -> np.ndarray:
    """The image file as float32 greyscale in [0, 1]; transparent pixels become white."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
                rgba = img.convert("RGBA")
                paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                img = Image.alpha_composite(paper, rgba)
            grey = np.asarray(img.convert("L"), dtype=np.float32) / np.float32(255.0)
    except FileNotFoundError:
        raise DigitError(f"{path}: no such file. Check the path.") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DigitError(
            f"{path}: not an image Pillow can read ({exc}). Save it as PNG or JPEG and retry."
        ) from None
    return grey


def background_level(grey: np.ndarray) -> float:
    """The median of the border pixels: the paper's (or the screen's) level."""
    border = np.concatenate([grey[0], grey[-1], grey[1:-1, 0], grey[1:-1, -1]])
    return float(np.median(border))


def ink_map(grey: np.ndarray) -> tuple[np.ndarray, bool]:
    """Ink as 1, background as 0: inverted if the background is light, stretched, denoised."""
    if grey.ndim != 2 or min(grey.shape) < 2:
        raise DigitError(f"expected a 2-D image of at least 2×2 pixels, got shape {grey.shape}.")
    if float(grey.max() - grey.min()) < BLANK_CONTRAST:
        raise DigitError(
            "the image is blank (one flat level, no strokes). Write the digit in dark ink on "
            "light paper, or light on dark, and retry."
        )
    background = background_level(grey)
    inverted = background > 0.5
    ink = (1.0 - grey) if inverted else grey
    ink = ink - (1.0 - background if inverted else background)
    peak = float(ink.max())
    if peak < MIN_INK:
        raise DigitError(
            "no ink found: nothing is clearly darker than the paper (or lighter than a dark "
            "background). Use a darker pen or more contrast, and retry."
        )
    ink = np.clip(ink / peak, 0.0, 1.0)
    ink[ink < INK_THRESHOLD] = 0.0
    return ink.astype(np.float32), inverted


def ink_box(ink: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box (top, left, bottom, right; exclusive ends) of the non-zero pixels."""
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of an area-averaging resize: each output pixel averages the input
    pixels it covers, fractions of pixels counted by their covered fraction."""
    scale = n_in / n_out
    weights = np.zeros((n_out, n_in), dtype=np.float64)
    for o in range(n_out):
        start, end = o * scale, (o + 1) * scale
        for i in range(int(np.floor(start)), min(int(np.ceil(end)), n_in)):
            weights[o, i] = min(end, i + 1) - max(start, i)
    return weights / scale


def resize_area(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-averaging resize (what a reader expects from shrinking a drawing)."""
    rows = area_matrix(image.shape[0], height)
    cols = area_matrix(image.shape[1], width)
    return (rows @ image.astype(np.float64) @ cols.T).astype(np.float32)


def fit_box(height: int, width: int, box: int = BOX) -> tuple[int, int]:
    """The digit's size once its longest side is ``box`` pixels (aspect kept, at least 1)."""
    # Round half up, as JavaScript's Math.round (the drawing pad's port) does.
    if height >= width:
        return box, max(1, int(np.floor(width * box / height + 0.5)))
    return max(1, int(np.floor(height * box / width + 0.5))), box


def centre_by_mass(digit: np.ndarray, size: int = SIZE, centre: float = CENTRE) -> np.ndarray:
    """Place ``digit`` in a ``size``×``size`` field with its centre of mass at ``centre``."""
    h, w = digit.shape
    total = float(digit.sum())
    cy = float((digit.sum(axis=1) * np.arange(h)).sum()) / total
    cx = float((digit.sum(axis=0) * np.arange(w)).sum()) / total
    # Round half up (JS's Math.round), then keep the whole digit inside the field.
    top = min(max(int(np.floor(centre - cy + 0.5)), 0), size - h)
    left = min(max(int(np.floor(centre - cx + 0.5)), 0), size - w)
    field = np.zeros((size, size), dtype=np.float32)
    field[top : top + h, left : left + w] = digit
    return field


def prepare(grey: np.ndarray) -> Prepared:
    """The whole recipe on a greyscale image in [0, 1] of any size."""
    ink, inverted = ink_map(np.asarray(grey, dtype=np.float32))
    top, left, bottom, right = ink_box(ink)
    crop = ink[top:bottom, left:right]
    digit = resize_area(crop, *fit_box(*crop.shape))
    digit = digit / digit.max()
    return Prepared(centre_by_mass(digit), inverted, (top, left, bottom, right))


def prepare_file(path: Path) -> Prepared:
    """:func:`prepare` on an image file; errors name the file."""
    grey = load_grey(path)
    try:
        return prepare(grey)
    except DigitError as exc:
        raise DigitError(f"{path}: {exc}") from None


def as_tensor(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) floats in [0, 1] → the networks' (N, 28, 28, 1) float32 input."""
    return np.asarray(images, dtype=np.float32)[..., np.newaxis]
