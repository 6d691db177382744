from __future__ import annotations

import numpy as np

from intro_cnn.data import dataset
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
    back = dataset.load_processed(str(tmp_path / "mnist.npz"))
    assert set(back) == set(arrays)
    for key, value in arrays.items():
        np.testing.assert_array_equal(back[key], value)
        assert back[key].dtype == value.dtype
