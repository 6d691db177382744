"""The fit itself: compile a model, feed it the processed splits, time and log each epoch.

Semantics are the notebook's ``model.fit(x, y, batch_size=128, validation_split=0.1)`` with
Adam and categorical cross-entropy: the validation rows are the last 10 % of the training set
(made explicit by the preprocess stage), the training rows are reshuffled every epoch. What
differs is how the batches reach the compiled step:

- :func:`input_datasets` hands the arrays to TF once; each epoch shuffles only the row indices
  and each batch is one ``gather``, without the parallel map and prefetch threads of Keras'
  own NumPy adapter (``train.prefetch`` turns prefetching back on where it pays, a GPU);
- ``train.steps_per_execution`` runs many batches per call into the compiled TF graph, so
  Python and the callbacks run once per chunk instead of once per batch;
- BatchNormalization layers train with TF's fused kernel
  (:func:`intro_cnn.models.fused_batch_norm`: Keras' semantics, standard layers).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from intro_cnn.config import ModelConfig, TrainConfig
from intro_cnn.data.dataset import one_hot
from intro_cnn.models import fused_batch_norm
from intro_cnn.runtime import cli
from intro_cnn.runtime.errors import ConfigError
from intro_cnn.training.tf_settings import use_prefetch
from intro_cnn.training.train_outputs import HISTORY_COLUMNS, TrainResult

log = logging.getLogger(__name__)


def compile_model(model: Any, cfg: ModelConfig, steps_per_execution: int) -> None:
    import keras

    optimizers = {"adam": keras.optimizers.Adam}
    if cfg.optimizer not in optimizers:
        raise ConfigError(
            f"Unknown optimizer {cfg.optimizer!r}: valid names are {sorted(optimizers)}."
        )
    model.compile(
        optimizer=optimizers[cfg.optimizer](learning_rate=cfg.learning_rate),
        loss=cfg.loss,
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )


def epoch_timer() -> Any:
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Wall seconds per epoch (training + validation)."""

        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.seconds.append(time.perf_counter() - self._start)

    return EpochTimer()


def epoch_log(timer: Any, epochs: int) -> Any:
    """One log line per epoch (what a log file needs; Keras' ``verbose=2`` prints two)."""
    import keras

    class EpochLog(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs = logs or {}
            metrics = " - ".join(f"{k} {logs[k]:.4f}" for k in HISTORY_COLUMNS[1:] if k in logs)
            log.info("Epoch %d/%d - %.1f s - %s", epoch + 1, epochs, timer.seconds[-1], metrics)

    return EpochLog()


def input_datasets(
    data: Mapping[str, np.ndarray], batch_size: int, seed: int, prefetch: bool
) -> tuple[Any, Any]:
    """Training and validation ``tf.data`` pipelines over the processed splits.

    Training: a fresh permutation of the rows every epoch (the dataset is re-iterated per
    epoch and reshuffles, seeded), cut into ``batch_size`` batches, the last one short, as
    ``fit(x, y, shuffle=True)`` does; each batch is one gather from the arrays held by TF.
    Validation: the rows in order, in batches of ``batch_size``.
    """
    import tensorflow as tf

    def rows_of(x_key: str, y_key: str) -> tuple[Any, Any]:
        return tf.constant(data[x_key]), tf.constant(one_hot(data[y_key]))

    x, y = rows_of("x_train", "y_train")
    n = int(x.shape[0])
    train = (
        tf.data.Dataset.range(n)
        .shuffle(n, seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .map(lambda idx: (tf.gather(x, idx), tf.gather(y, idx)))
    )
    x_val, y_val = rows_of("x_val", "y_val")
    n_val = int(x_val.shape[0])
    val = (
        tf.data.Dataset.range(n_val)
        .batch(batch_size)
        .map(lambda idx: (tf.gather(x_val, idx), tf.gather(y_val, idx)))
    )
    if prefetch:
        train, val = train.prefetch(tf.data.AUTOTUNE), val.prefetch(tf.data.AUTOTUNE)
    else:
        # tf.data would otherwise turn the maps into parallel maps (its default static
        # optimisation), bringing back the background threads this set-up avoids.
        options = tf.data.Options()
        options.experimental_optimization.map_parallelization = False
        train, val = train.with_options(options), val.with_options(options)
    return train, val


def _callbacks(timer: Any, epochs: int, verbose: int | str, on_epoch: Any) -> tuple[list, int]:
    """The fit's callbacks after ``timer``, and Keras' ``verbose``: with "auto", a live bar on
    a terminal and one log line per epoch elsewhere (DVC, CI)."""
    callbacks = [timer] + ([on_epoch(timer)] if on_epoch else [])
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 0
        if not verbose:
            callbacks.append(epoch_log(timer, epochs))
    return callbacks, verbose


def _history_rows(history: Mapping[str, list[float]], timer: Any) -> list[dict[str, float]]:
    """One row per epoch: Keras' metrics as floats, and the epoch's wall seconds."""
    return [
        {
            "epoch": i + 1,
            "accuracy": float(history["accuracy"][i]),
            "loss": float(history["loss"][i]),
            "val_accuracy": float(history["val_accuracy"][i]),
            "val_loss": float(history["val_loss"][i]),
            "seconds": round(timer.seconds[i], 3),
        }
        for i in range(len(history["loss"]))
    ]


def fit(
    model: Any,
    data: Mapping[str, np.ndarray],
    cfg: ModelConfig,
    train_cfg: TrainConfig,
    seed: int,
    verbose: int | str = "auto",
    on_epoch: Any = None,
) -> TrainResult:
    """Compile and fit ``model`` on the processed splits; return the per-epoch history.

    ``on_epoch(timer)``, if given, returns a Keras callback run after each epoch is timed
    (the live MLflow metrics). A first SIGINT or SIGTERM ends the fit after its current step
    (:func:`intro_cnn.runtime.cli.stopping_gently`) and is raised once it has returned.
    """
    compile_model(model, cfg, train_cfg.steps_per_execution)
    train_ds, val_ds = input_datasets(data, cfg.batch_size, seed, use_prefetch(train_cfg.prefetch))
    timer = epoch_timer()
    callbacks, verbose = _callbacks(timer, cfg.epochs, verbose, on_epoch)
    start = time.perf_counter()

    def stop() -> None:  # Keras checks this after every step
        model.stop_training = True

    with cli.stopping_gently(stop), fused_batch_norm(model):
        hist = model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=cfg.epochs,
            shuffle=False,  # the dataset reshuffles itself every epoch (input_datasets)
            verbose=verbose,
            callbacks=callbacks,
        )
    wall = time.perf_counter() - start
    rows = _history_rows(hist.history, timer)
    n_train = len(data["x_train"])
    return TrainResult(
        history=rows,
        wall_seconds=wall,
        samples_per_second=n_train * len(rows) / wall,
        n_train=n_train,
        n_val=len(data["x_val"]),
    )
