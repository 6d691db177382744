"""The notebook's work the notebook's way, in one plain process (``pipeline_speed.py``'s
reference side): no DVC, MLflow, claims or report.

    python benchmarks/notebook_way.py MNIST_NPZ OUT_DIR

NumPy arrays into ``model.fit(..., validation_split=0.1)`` for every model of params.yaml (the
same builders, epochs, batch size and optimiser) and again for each seed of ``replicates``
(the pipeline's same work), ``model.evaluate`` on the test set, the three
convolution demos with ``scipy.ndimage.convolve`` and matplotlib figures of the cnn's filters
and feature maps. Writes the figures and ``result.json`` (seconds and test accuracy per model,
total seconds) to OUT_DIR. TensorFlow is imported plainly, as a notebook does: with its own
defaults for this CPU (oneDNN only where TF turns it on by itself).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def train_all(mnist: str) -> tuple[dict, object, np.ndarray]:
    """Fit and test every model; the results, the trained cnn and the test images."""
    import keras

    from intro_cnn import config, models

    with np.load(mnist) as f:
        x_train, y_train, x_test, y_test = (
            f[k] for k in ("x_train", "y_train", "x_test", "y_test")
        )
    x_train = (x_train / 255.0).astype("float32")[..., None]
    x_test = (x_test / 255.0).astype("float32")[..., None]
    y1, yt = keras.utils.to_categorical(y_train, 10), keras.utils.to_categorical(y_test, 10)
    params = config.load_params(ROOT / config.PARAMS_FILE)
    runs = [(name, params.seed_for(name)) for name in params.models]
    runs += [(n, s) for n in params.replicates.models for s in params.replicates.seeds]
    result, cnn = {}, None
    for name, seed in runs:
        cfg = params.model(name)
        keras.utils.set_random_seed(seed)
        model = models.build_model(name)
        model.compile(keras.optimizers.Adam(cfg.learning_rate), cfg.loss, metrics=["accuracy"])
        start = time.perf_counter()
        model.fit(
            x_train,
            y1,
            batch_size=cfg.batch_size,
            epochs=cfg.epochs,
            validation_split=0.1,
            verbose=0,
        )
        accuracy = model.evaluate(x_test, yt, batch_size=1024, verbose=0)[1]
        key = name if seed == params.seed_for(name) else f"{name}-{seed}"
        result[key] = {"seconds": time.perf_counter() - start, "test_accuracy": float(accuracy)}
        if name == "cnn":
            cnn = model
    return result, cnn, x_test


def draw(cnn: object, x_test: np.ndarray, out: Path) -> None:
    """The convolution demos, the cnn's first-layer filters and its feature maps."""
    import keras
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import ndimage

    rng = np.random.RandomState(2)
    walk = np.cumsum(rng.randn(200))
    taps = np.exp(-(np.linspace(-2, 2, 15) ** 2))
    image = rng.rand(600, 799)
    kernels = [
        np.ones((15, 15)) / 225,
        np.array([[1, 0, -1]] * 3),
        np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(12, 3))
    axes[0].plot(walk)
    axes[0].plot(ndimage.convolve(walk, taps / taps.sum()))
    for ax, kernel in zip(axes[1:], kernels, strict=True):
        ax.imshow(ndimage.convolve(image, kernel), cmap="gray")
    fig.savefig(out / "convolutions.png")
    plt.close(fig)
    if cnn is None:
        return
    convs = [layer for layer in cnn.layers if isinstance(layer, keras.layers.Conv2D)]
    weights = convs[0].get_weights()[0]
    fig, axes = plt.subplots(4, 8, figsize=(8, 4))
    for i, ax in enumerate(axes.flat):
        ax.imshow(weights[:, :, 0, i], cmap="gray")
        ax.axis("off")
    fig.savefig(out / "filters.png")
    plt.close(fig)
    for layer in convs:
        maps = keras.Model(cnn.inputs, layer.output).predict(x_test[:5], verbose=0)
        fig, axes = plt.subplots(5, 8, figsize=(8, 5))
        for i, ax in enumerate(axes.flat):
            ax.imshow(maps[i // 8, :, :, i % 8], cmap="gray")
            ax.axis("off")
        fig.savefig(out / f"maps_{layer.name}.png")
        plt.close(fig)


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(ROOT))
    mnist, out = sys.argv[1], Path(sys.argv[2])
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    result, cnn, x_test = train_all(mnist)
    draw(cnn, x_test, out)
    result["total_seconds"] = time.perf_counter() - start
    (out / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
