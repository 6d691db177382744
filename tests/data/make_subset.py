"""Cut the small real MNIST subset the tests use from the full canonical copy.

    python tests/data/make_subset.py ../shared/data/mnist/mnist.npz tests/data/mnist_subset.npz

It keeps the first N_TRAIN training and the first N_TEST test images, in their original order,
as uint8 arrays in the Keras layout, compressed. Deterministic: rerunning gives the same arrays.
"""

import sys

import numpy as np

N_TRAIN = 1000
N_TEST = 200


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    with np.load(src) as full:
        arrays = {
            "x_train": full["x_train"][:N_TRAIN],
            "y_train": full["y_train"][:N_TRAIN],
            "x_test": full["x_test"][:N_TEST],
            "y_test": full["y_test"][:N_TEST],
        }
    np.savez_compressed(dst, **arrays)


if __name__ == "__main__":
    main()
