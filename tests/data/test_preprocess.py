"""Stage preprocess: scaling, shapes, the Keras-style validation split, the summary."""

from __future__ import annotations

import numpy as np
import pytest

from intro_cnn.data import preprocess


def test_to_float_images_scales_to_unit_interval(subset):
    x = preprocess.to_float_images(subset["x_train"])
    assert x.dtype == np.float32
    assert x.shape == (1000, 28, 28, 1)
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_array_equal(x[..., 0] * 255.0, subset["x_train"].astype(np.float32))


def test_to_float_images_rejects_non_uint8():
    with pytest.raises(ValueError, match="uint8"):
        preprocess.to_float_images(np.zeros((2, 28, 28), dtype=np.float32))


def test_split_matches_keras_validation_split(subset):
    data = preprocess.split(subset, 0.1)
    # Keras: split_at = int(n * (1 - validation_split)); validation is the tail, unshuffled.
    assert len(data["x_train"]) == 900 and len(data["x_val"]) == 100
    np.testing.assert_array_equal(data["y_train"], subset["y_train"][:900])
    np.testing.assert_array_equal(data["y_val"], subset["y_train"][900:])
    np.testing.assert_array_equal(data["y_test"], subset["y_test"])
    assert data["x_test"].shape == (200, 28, 28, 1)


def test_splits_never_overlap(subset):
    data = preprocess.split(subset, 0.1)
    rows = {
        name: {data[f"x_{name}"][i].tobytes() for i in range(len(data[f"x_{name}"]))}
        for name in ("train", "val", "test")
    }
    assert not rows["train"] & rows["val"]
    assert not rows["train"] & rows["test"]
    assert not rows["val"] & rows["test"]
    # and nothing is lost: train + val is exactly the raw training set, in order
    joined = np.concatenate([data["x_train"], data["x_val"]])[..., 0] * 255.0
    np.testing.assert_array_equal(joined, subset["x_train"])


@pytest.mark.parametrize("fraction", [0.0, 1.0, 0.9999])
def test_degenerate_split_is_an_error(subset, fraction):
    with pytest.raises(ValueError, match="empty"):
        preprocess.validation_cut(len(subset["x_train"]), fraction)


def test_summary_counts_and_pixel_stats(subset):
    data = preprocess.split(subset, 0.1)
    summary = preprocess.summarize(data)
    assert summary["train"]["n"] == 900
    assert sum(summary["val"]["per_class"].values()) == 100
    expected = np.bincount(subset["y_test"], minlength=10)
    assert [summary["test"]["per_class"][str(k)] for k in range(10)] == expected.tolist()
    assert summary["test"]["pixel_mean"] == pytest.approx(subset["x_test"].mean() / 255.0, abs=1e-6)
