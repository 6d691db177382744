"""The notebook's own figures, its PNG outputs, the made-up photo and the retraining's words."""

from __future__ import annotations

import numpy as np
import pytest

from intro_cnn import i18n
from intro_cnn.data import digits
from intro_cnn.notebook import figures, images, results, retrain, samples
from intro_cnn.reporting.network_figures import ModelResults

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _history(epochs: int) -> dict[str, np.ndarray]:
    rows = [
        {"epoch": e, "accuracy": 0.9, "loss": 0.3, "val_accuracy": 0.91, "val_loss": 0.28}
        for e in range(1, epochs + 1)
    ]
    return retrain.history_arrays(rows)


@pytest.fixture
def digits_subset(subset):
    return subset["x_test"][:4].astype(np.float32) / 255.0, subset["y_test"][:4]


@pytest.mark.parametrize("lang", i18n.LANGS)
def test_every_figure_renders_as_a_png_output(digits_subset, lang):
    x, y = digits_subset
    photo = samples.as_photo(x[0])
    made = [
        figures.fig_digits(x, y, lang),
        figures.fig_recipe(photo, digits.prepare(photo).image, x[0], lang),
        figures.fig_retrained(_history(3), _history(2), "cnn_small", lang),
    ]
    for fig in made:
        png = images.show(fig, dpi=40)
        assert png._repr_png_().startswith(PNG_MAGIC)
        assert "PNG" in repr(png)


def test_the_recipe_undoes_the_made_up_photo(digits_subset):
    x, _ = digits_subset
    for digit in x:
        photo = samples.as_photo(digit)
        assert photo.shape == (4 * 28 + 45, 4 * 28 + 18) and photo.min() >= 0 <= photo.max() <= 1
        prepared = digits.prepare(photo)
        assert prepared.inverted
        # MNIST digits are themselves centred by mass in a 20-pixel box: nearly the same image.
        assert np.abs(prepared.image - digit).mean() < 0.08


def test_the_retraining_sentences_name_both_accuracies():
    new = retrain.Retrained("cnn_small", _history(2), 0.9512, 12.0)
    pipeline = ModelResults(_history(10), np.eye(2), [], np.zeros((0, 28, 28)), 0.9861, 5000)
    for lang in i18n.LANGS:
        text = retrain.comparison(new, pipeline, lang)
        assert "0.9861" in text and "0.9512" in text and "10" in text and "2" in text
        assert "cnn_small" in retrain.skipped("cnn_small", 2, lang)


def test_a_retraining_needs_an_epoch():
    with pytest.raises(ValueError, match="at least 1"):
        retrain.retrain("cnn_small", 0, params=None)  # type: ignore[arg-type]


def test_seed_sentences_say_how_many_seeds_and_the_interval():
    entry = {
        "n": 2,
        "seeds": [1, 2],
        "test_accuracy": {"mean": 0.98, "std": 0.001, "low": 0.97, "high": 0.99},
    }
    for lang in i18n.LANGS:
        text = results.seeds_sentence("cnn_small", entry, lang)
        assert "2" in text and "1, 2" in text and "[0.9700, 0.9900]" in text
        single = results.seeds_sentence("cnn", {**entry, "n": 1, "seeds": [1]}, lang)
        assert "0.9800" in single and "[" not in single
        assert "compare" in results.seeds_sentence("mlp", {}, lang)
