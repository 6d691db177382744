"""The work of stage ``evaluate@<model>`` (``stages/evaluate.py``): test one trained model on
the test split.

It writes, under ``reports/evaluate/<model>/``: ``predictions.csv`` (``actual,predicted`` per test
image: DVC's ``confusion`` plot), ``confusion.json`` (rows = true class), ``per_class.json``
(precision, recall, F1, support), ``wrong.json`` (the most confidently wrong test images),
``metrics.json`` (test accuracy, loss, macro F1 and the parameter count), ``timing.json``
(inference images/s), ``run.json`` (the MLflow runs the test metrics went to: the model's own
training run, and this execution's parent run) and ``inputs.json`` (digests of the model, data
and params evaluated). The numbers come from :mod:`intro_cnn.evaluation.metrics`, the MLflow
logging from :mod:`intro_cnn.evaluation.evaluate_mlflow`; the compare stage puts the models
side by side.

Keras and MLflow are imported where they are used, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from intro_cnn import config
from intro_cnn.config import PROCESSED_MNIST, EvaluateConfig, Params, model_path, run_info_path
from intro_cnn.data import dataset
from intro_cnn.evaluation import evaluate_mlflow, fingerprint, metrics
from intro_cnn.evaluation.errors import EvaluationError, reported_as
from intro_cnn.runtime import cli, files, tf_import
from intro_cnn.runtime.errors import ConfigError
from intro_cnn.runtime.files import read_json

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

# The per-model files also logged to MLflow (predictions.csv is large and adds nothing).
MLFLOW_ARTIFACTS = (config.CONFUSION, config.PER_CLASS, config.WRONG)


def load_test_split(path: Path = PROCESSED_MNIST) -> tuple[np.ndarray, np.ndarray]:
    """The processed test images and their labels, as int64 (the metrics index with them)."""
    with reported_as(EvaluationError):
        arrays = dataset.load_processed(("x_test", "y_test"), path)
    return arrays["x_test"], arrays["y_test"].astype(np.int64)


def read_run_info(path: Path) -> dict[str, Any]:
    """The train stage's ``run.json``: which MLflow run and experiment hold the model."""
    with reported_as(EvaluationError):
        info = read_json(path)
    if not isinstance(info, dict) or "experiment" not in info:
        raise EvaluationError(
            f"{path}: expected {{run_id, experiment, model}}, got {info!r}; rerun the train stage."
        )
    return info


def read_train_outputs(name: str) -> dict[str, Any]:
    """Check the model file exists and read its ``run.json`` (before any slow work)."""
    for path in (model_path(name), run_info_path(name)):
        files.require(path, f"dvc repro train@{name}")
    return read_run_info(run_info_path(name))


def layer_rows(model: keras.Model) -> list[dict[str, Any]]:
    """The model summary as rows (``report.LayerRow``'s fields): layer name, class, output
    shape without the batch axis, parameter count."""
    return [
        {
            "name": layer.name,
            "type": layer.__class__.__name__,
            "output_shape": " × ".join(str(d) for d in tuple(layer.output.shape)[1:]),
            "params": int(layer.count_params()),
        }
        for layer in model.layers
    ]


def evaluate_model(
    name: str, x: np.ndarray, y: np.ndarray, cfg: EvaluateConfig, outputs: files.Outputs
) -> tuple[dict[str, Any], float]:
    """Evaluate one saved model and add its per-model files to ``outputs``; return its
    ``metrics.json`` entry and inference throughput."""
    with tf_import.importing_tensorflow():
        import keras

    with reported_as(EvaluationError):  # a corrupt model file, or one made for other images
        model = keras.saving.load_model(model_path(name), compile=False)
        proba, images_per_s = metrics.timed_predict(model, x, cfg.batch_size)
    scores = metrics.classification_metrics(y, proba)
    out = config.eval_dir(name)
    outputs.add_text(out / config.PREDICTIONS, metrics.predictions_csv(y, proba))
    outputs.add_json(out / config.CONFUSION, scores["confusion"])
    outputs.add_json(out / config.PER_CLASS, metrics.per_class_table(scores))
    outputs.add_json(out / config.WRONG, metrics.most_confident_wrong(y, proba, cfg.n_wrong))
    outputs.add_json(out / config.EVAL_LAYERS, layer_rows(model))
    log.info(
        "%s: test accuracy %.4f, loss %.4f, macro F1 %.4f, %.0f images/s",
        name,
        scores["accuracy"],
        scores["loss"],
        scores["macro_f1"],
        images_per_s,
    )
    return metrics.metrics_entry(scores) | {"params": int(model.count_params())}, images_per_s


def run_stage(params: Params, name: str, uri: str) -> None:
    """Evaluate one model, log to MLflow, then write every output at once.

    Nothing is written before the MLflow logging succeeds, so a failed evaluation never leaves
    metrics the gate could take for good ones; the inputs' digests are recorded beside them
    (:mod:`intro_cnn.evaluation.fingerprint`) so the gate can tell they belong to the current
    models.
    """
    if name not in params.models:
        raise ConfigError(
            f"Unknown model {name!r} in params.yaml: valid names are {sorted(params.models)}."
        )
    run_info = read_train_outputs(name)
    with reported_as(EvaluationError):
        inputs = fingerprint.for_model(params, name)
    x, y = load_test_split()
    outputs = files.Outputs()
    entry, images_per_s = evaluate_model(name, x, y, params.evaluate, outputs)
    out = config.eval_dir(name)
    timing = metrics.timing_entry(images_per_s)
    outputs.add_json(out / config.EVAL_METRICS, entry)
    outputs.add_json(out / config.EVAL_TIMING, timing)
    # MLflow before any output is written, from a staging copy of the files it records.
    with (
        reported_as(EvaluationError),
        tempfile.TemporaryDirectory(prefix="intro-cnn-evaluate-") as tmp,
    ):
        outputs.copy_to(Path(tmp))
        logged = evaluate_mlflow.log_model(
            uri,
            params.train.experiment,
            run_info,
            evaluate_mlflow.mlflow_metrics(entry | timing),
            [Path(tmp) / out / f for f in MLFLOW_ARTIFACTS],
            x,
            y,
        )
    outputs.add_json(out / config.EVAL_RUN, asdict(logged))
    outputs.add_json(out / config.EVAL_INPUTS, inputs)
    with reported_as(EvaluationError), cli.committing():
        outputs.commit()
