"""The notebook's optional retraining (``ENTRENAR = True``): one network of params.yaml for a
few epochs, fitted and tested as the pipeline fits and tests it, nothing written.

The pipeline's model, history and MLflow runs stay as they are: this is a look at how a
training starts, next to the one the pipeline made.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from intro_cnn import config, i18n
from intro_cnn.data import dataset
from intro_cnn.evaluation import metrics
from intro_cnn.models import build_model
from intro_cnn.reporting.network_figures import ModelResults
from intro_cnn.training import fitting, tf_settings, train_outputs


@dataclass(frozen=True)
class Retrained:
    """What the short training gave: its history (one array per history.csv column) and
    its test accuracy."""

    name: str
    history: Mapping[str, np.ndarray]
    test_accuracy: float
    seconds: float


def history_arrays(rows: list[dict[str, float]]) -> dict[str, np.ndarray]:
    """A fit's per-epoch rows as one array per column, as the figures take them."""
    return {k: np.array([float(r[k]) for r in rows]) for k in train_outputs.HISTORY_COLUMNS}


def retrain(name: str, epochs: int, params: config.Params) -> Retrained:
    """Fit ``name`` from scratch for ``epochs`` epochs on the processed MNIST splits, with the
    pipeline's seed, precision, batch size and optimiser; test it as the evaluate stage does."""
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}.")
    data = dataset.load_processed()
    seed = params.seed_for(name)
    tf_settings.configure_tensorflow(seed, params.train.deterministic)
    model = build_model(name, tf_settings.resolve_precision(params.train.precision))
    cfg = dataclasses.replace(params.model(name), epochs=epochs)
    result = fitting.fit(model, data, cfg, params.train, seed, verbose=2)
    proba = metrics.predict_proba(model, data["x_test"], params.evaluate.batch_size)
    scores = metrics.classification_metrics(data["y_test"], proba)
    return Retrained(
        name=name,
        history=history_arrays(result.history),
        test_accuracy=float(scores["accuracy"]),
        seconds=result.wall_seconds,
    )


def comparison(new: Retrained, pipeline: ModelResults, lang: str) -> str:
    """Both test accuracies in one sentence: the pipeline's model and the notebook's."""
    return i18n.text(
        "notebook",
        "retrained_accuracy",
        lang,
        model=new.name,
        pipeline=pipeline.test_accuracy,
        pipeline_epochs=len(pipeline.history["epoch"]),
        notebook=new.test_accuracy,
        notebook_epochs=len(new.history["epoch"]),
        seconds=new.seconds,
    )


def skipped(name: str, epochs: int, lang: str) -> str:
    """What the training cell says when ``ENTRENAR`` is false."""
    return i18n.text("notebook", "training_skipped", lang, model=name, epochs=epochs)
