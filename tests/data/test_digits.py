"""Tests of the MNIST recipe (intro_cnn/data/digits.py) on real MNIST digits rendered as users send
them."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from intro_cnn.data import digits


def as_paper(image: np.ndarray, size: int = 240, offset: tuple[int, int] = (20, 50)) -> np.ndarray:
    """An MNIST digit as dark ink on light paper, enlarged and off-centre, greyscale [0, 1]."""
    big = Image.fromarray(255 - image).resize((size // 2, size // 2), Image.BICUBIC)
    paper = Image.new("L", (size, size), 235)
    paper.paste(big, offset)
    return np.asarray(paper, dtype=np.float32) / 255.0


def test_mnist_digits_come_back_almost_unchanged(subset):
    x = subset["x_test"][:100].astype(np.float32) / 255.0
    out = np.stack([digits.prepare(i).image for i in x])
    assert out.shape == (100, 28, 28) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() == pytest.approx(1.0)
    assert np.abs(out - x).mean() < 0.01
    assert not any(digits.prepare(i).inverted for i in x)


def test_a_digit_on_paper_is_inverted_cropped_scaled_and_centred(subset):
    image = subset["x_test"][0]
    out = digits.prepare(as_paper(image))
    assert out.inverted
    top, left, bottom, right = out.box
    assert top >= 50 and left >= 20 and bottom <= 50 + 120 and right <= 20 + 120
    ink = np.argwhere(out.image > 0)
    height, width = ink.max(0) - ink.min(0) + 1
    assert max(height, width) == digits.BOX
    rows, cols = np.indices(out.image.shape)
    total = out.image.sum()
    assert abs((rows * out.image).sum() / total - digits.CENTRE) <= 0.5
    assert abs((cols * out.image).sum() / total - digits.CENTRE) <= 0.5
    # Close to the original digit, which MNIST centred the same way.
    original = image.astype(np.float32) / 255.0
    assert np.abs(out.image - original).mean() < 0.06


def test_area_resize_keeps_the_mean_and_the_aspect():
    rng = np.random.default_rng(0)
    image = rng.random((97, 41)).astype(np.float32)
    small = digits.resize_area(image, 20, 8)
    assert small.shape == (20, 8)
    assert small.mean() == pytest.approx(image.mean(), rel=1e-3)
    assert digits.fit_box(97, 41) == (20, 8)
    assert digits.fit_box(10, 40) == (5, 20)
    assert digits.fit_box(2, 400) == (1, 20)  # never zero wide


def test_files_of_any_format(tmp_path, subset):
    grey = (as_paper(subset["x_test"][1]) * 255).astype(np.uint8)
    rgba = Image.fromarray(grey).convert("RGBA")
    paths = {}
    for suffix, img in {
        ".png": rgba,
        ".jpg": rgba.convert("RGB"),
        ".bmp": rgba.convert("RGB"),
    }.items():
        paths[suffix] = tmp_path / f"digit{suffix}"
        img.save(paths[suffix])
    # A transparent PNG with black strokes: the transparency is paper.
    alpha = np.where(grey < 128, 255, 0).astype(np.uint8)
    strokes = Image.merge(
        "RGBA", [Image.fromarray(np.zeros_like(grey))] * 3 + [Image.fromarray(alpha)]
    )
    paths["transparent"] = tmp_path / "strokes.png"
    strokes.save(paths["transparent"])
    images = {k: digits.prepare_file(p).image for k, p in paths.items()}
    for k, image in images.items():
        assert np.abs(image - images[".png"]).mean() < 0.05, k


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"not an image at all", "not an image Pillow can read"),
        ("flat", "blank"),
        ("faint", "no ink"),
    ],
)
def test_bad_images_are_refused_with_the_file_and_the_fix(tmp_path, content, message):
    path = tmp_path / "digit.png"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "flat":
        Image.new("L", (50, 50), 200).save(path)
    elif content == "faint":
        # Noise of a few grey levels over the whole sheet: contrast, but nothing like ink.
        rng = np.random.default_rng(1)
        noise = 230 + rng.integers(0, 25, (60, 60))
        Image.fromarray(noise.astype(np.uint8)).save(path)
    with pytest.raises(digits.DigitError, match=message) as err:
        digits.prepare_file(path)
    assert str(path) in str(err.value)


def test_jpeg_noise_does_not_move_the_crop(subset):
    paper = as_paper(subset["x_test"][2])
    buf = io.BytesIO()
    Image.fromarray((paper * 255).astype(np.uint8)).save(buf, format="JPEG", quality=60)
    noisy = np.asarray(Image.open(buf), dtype=np.float32) / 255.0
    clean_box = digits.prepare(paper).box
    noisy_box = digits.prepare(noisy).box
    assert np.abs(np.subtract(clean_box, noisy_box)).max() <= 3
