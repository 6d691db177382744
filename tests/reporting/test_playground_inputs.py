"""The playground's inputs: the reduced image, the notebook's Gaussian as a sigma, the file's
round trip through its one reader, and what the reader refuses."""

from __future__ import annotations

import json

import numpy as np
import pytest

from intro_cnn import config
from intro_cnn.demos import convolutions
from intro_cnn.reporting import playground_inputs as playground
from intro_cnn.runtime.errors import StageError

CFG = config.ConvolutionsConfig(walk_seed=2, walk_steps=200, gauss_taps=15, gauss_halfwidth=2.0)


def _image(height: int, width: int) -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [((600, 799), (240, 320)), ((799, 600), (320, 240)), ((40, 50), (40, 50))],
)
def test_reduce_image_keeps_the_aspect_and_caps_the_longest_side(shape, expected):
    small = playground.reduce_image(_image(*shape))
    assert small.shape == (*expected, 3) and small.dtype == np.uint8


def test_a_small_image_is_left_as_it_is():
    image = _image(40, 50)
    assert np.array_equal(playground.reduce_image(image), image)


@pytest.mark.parametrize(("taps", "halfwidth"), [(15, 2.0), (7, 1.0), (21, 3.5)])
def test_sigma_gives_the_notebooks_gaussian(taps, halfwidth):
    sigma = playground.notebook_sigma(taps, halfwidth)
    x = np.arange(taps) - taps // 2
    ours = np.exp(-(x**2) / (2 * sigma**2))
    np.testing.assert_allclose(
        ours / ours.sum(), convolutions.gaussian_1d(taps, halfwidth), rtol=1e-12
    )


def test_data_round_trips_through_the_reader(tmp_path):
    image = _image(600, 799)
    arrays = convolutions.compute_all(CFG, image)
    data = playground.playground_data(arrays, CFG)
    path = tmp_path / "playground.json"
    path.write_text(json.dumps(data), encoding="utf-8")

    back = playground.read(path)
    assert back["image"]["full_size"] == [799, 600]
    np.testing.assert_array_equal(playground.image_array(back), playground.reduce_image(image))
    assert back["walk"] == arrays["walk"].tolist()  # exact doubles
    assert back["gaussian"]["taps"] == 15 and back["gaussian"]["halfwidth"] == 2.0


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "is not a JSON file"),
        ("[1, 2]", "holds list, not an object"),
        ('{"walk": [], "gaussian": {}}', "lacks image"),
        (
            '{"walk": [], "gaussian": {}, "image": {"width": 2, "height": 2, "rgb": "AAAA"}}',
            "a readable image",
        ),
    ],
)
def test_reader_refuses_a_bad_file_and_names_the_fix(tmp_path, content, problem):
    path = tmp_path / "playground.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=problem) as exc:
        playground.read(path)
    assert "dvc repro convolutions --force" in str(exc.value)


def test_reader_names_the_stage_when_the_file_is_missing(tmp_path):
    with pytest.raises(StageError, match="run `dvc repro convolutions` first"):
        playground.read(tmp_path / "playground.json")
