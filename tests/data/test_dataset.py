from __future__ import annotations

import numpy as np
import pytest

from intro_cnn.data import dataset
from intro_cnn.runtime.errors import StageError
from intro_cnn.runtime.files import write_npz


def test_one_hot():
    y = np.array([0, 3, 9], dtype=np.uint8)
    oh = dataset.one_hot(y)
    assert oh.dtype == np.float32 and oh.shape == (3, 10)
    np.testing.assert_array_equal(oh.argmax(1), y)
    np.testing.assert_array_equal(oh.sum(1), 1.0)


def test_load_processed_reads_every_split_back(tmp_path):
    arrays = {
        "x_test": np.linspace(0, 1, 2 * 28 * 28, dtype=np.float32).reshape(2, 28, 28, 1),
        "y_test": np.array([7, 2], dtype=np.uint8),
    }
    write_npz(tmp_path / "mnist.npz", arrays, compress=False)
    back = dataset.load_processed(("x_test", "y_test"), tmp_path / "mnist.npz")
    assert set(back) == set(arrays)
    for key, value in arrays.items():
        np.testing.assert_array_equal(back[key], value)
        assert back[key].dtype == value.dtype


def _split_file(tmp_path, **arrays):
    path = tmp_path / "mnist.npz"
    write_npz(path, arrays, compress=False)
    return path


def test_load_processed_names_the_fix_for_a_missing_file_split_or_shape(tmp_path):
    images = np.zeros((2, 28, 28, 1), dtype=np.float32)
    with pytest.raises(StageError, match=r"mnist.npz not found: run `dvc repro preprocess`"):
        dataset.load_processed(path=tmp_path / "mnist.npz")
    path = _split_file(tmp_path, x_test=images)
    with pytest.raises(StageError, match=r"lacks \['y_test'\]: rerun `dvc repro preprocess`"):
        dataset.load_processed(("x_test", "y_test"), path)
    path = _split_file(tmp_path, x_test=images[..., 0], y_test=np.array([1, 2]))
    with pytest.raises(StageError, match=r"expected x_test \(N, 28, 28, 1\), got \(2, 28, 28\)"):
        dataset.load_processed(("x_test", "y_test"), path)
    for labels in (np.array([1, 2, 3]), np.array([0.5, 1.0])):
        path = _split_file(tmp_path, x_test=images, y_test=labels)
        with pytest.raises(StageError, match="expected as many integer labels y_test as images"):
            dataset.load_processed(("x_test", "y_test"), path)
