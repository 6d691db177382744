"""Stage ``evaluate@<model>``: test one trained model on the test split.

It writes, under ``reports/evaluate/<model>/``: ``predictions.csv`` (``actual,predicted`` per test
image: DVC's ``confusion`` plot), ``confusion.json`` (rows = true class), ``per_class.json``
(precision, recall, F1, support), ``wrong.json`` (the most confidently wrong test images),
``metrics.json`` (test accuracy, loss, macro F1 and the parameter count), ``timing.json``
(inference images/s), ``run.json`` (the MLflow runs the test metrics went to: the model's own
training run, and this execution's parent run) and ``inputs.json`` (digests of the model, data
and params evaluated). The compare stage puts the models side by side.

Keras and MLflow are imported where they are used, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from intro_cnn import config, tracking
from intro_cnn.config import (
    PROCESSED_MNIST,
    EvaluateConfig,
    Params,
    load_params,
    model_path,
    run_info_path,
)
from intro_cnn.evaluation import fingerprint
from intro_cnn.runtime import cli, errors, files, tf_import
from intro_cnn.runtime.files import read_json
from intro_cnn.tracking import mlflow_store

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

# Keras' backend epsilon: probabilities are clipped to [EPS, 1 - EPS] before the log, so a
# confidently wrong answer costs -log(1e-7) ~ 16.1 rather than infinity.
EPS = 1e-7

# The per-model files also logged to MLflow (predictions.csv is large and adds nothing).
MLFLOW_ARTIFACTS = (config.CONFUSION, config.PER_CLASS, config.WRONG)

TEST_DATASET = "mnist-test"  # the MLflow dataset the test metrics are computed on
# Names of the test metrics in MLflow (in the parent run as "<model>/<name>").
MLFLOW_METRICS = {
    "test_accuracy": ("test", "accuracy"),
    "test_loss": ("test", "loss"),
    "test_macro_f1": ("test", "macro_f1"),
    "inference_images_per_s": ("inference_images_per_s",),
}


class EvaluationError(errors.StageError):
    """An input of the evaluate stage is missing or malformed (the message says which and how
    to fix it)."""


# --------------------------------------------------------------------------------------
# Pure core: predictions and metrics
# --------------------------------------------------------------------------------------
def predict_proba(model: keras.Model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Class probabilities ``(N, C)`` of ``model`` on ``x``.

    Raises if the output is not a probability distribution per row (e.g. a model ending in
    logits instead of softmax), since every metric below assumes one.
    """
    proba = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    if proba.ndim != 2 or proba.shape[0] != len(x):
        raise EvaluationError(
            f"Model {model.name!r} returned shape {proba.shape} for {len(x)} images; "
            "expected (N, classes)."
        )
    sums = proba.sum(axis=1, dtype=np.float64)
    if not np.all(np.isfinite(proba)) or proba.min() < 0 or not np.allclose(sums, 1.0, atol=1e-3):
        raise EvaluationError(
            f"Model {model.name!r} does not output probabilities (rows must be non-negative and "
            "sum to 1): end it with a softmax layer."
        )
    return proba


def timed_predict(
    model: keras.Model, x: np.ndarray, batch_size: int, warmup: int | None = None
) -> tuple[np.ndarray, float]:
    """Probabilities on ``x`` and the warm inference throughput in images per second.

    A small predict first (``warmup`` images, one batch by default) builds and traces the
    predict function, so the timed run measures inference, not graph compilation.
    """
    if len(x) == 0:
        raise EvaluationError("No test images to evaluate on.")
    n_warm = min(len(x), batch_size if warmup is None else warmup)
    predict_proba(model, x[:n_warm], batch_size)
    start = time.perf_counter()
    proba = predict_proba(model, x, batch_size)
    elapsed = time.perf_counter() - start
    return proba, len(x) / max(elapsed, 1e-9)


def categorical_crossentropy(y_true: np.ndarray, proba: np.ndarray, eps: float = EPS) -> float:
    """Mean categorical cross-entropy, computed as Keras does from probabilities.

    Rows are renormalised to sum to 1, then clipped to ``[eps, 1 - eps]`` before the log.
    """
    p = np.asarray(proba, dtype=np.float64)
    p = p / p.sum(axis=1, keepdims=True)
    p = np.clip(p, eps, 1.0 - eps)
    picked = p[np.arange(len(y_true)), y_true]
    return float(-np.mean(np.log(picked)))


def _labels(y_true: np.ndarray, n_classes: int) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise EvaluationError(f"Labels must be a 1-D integer array, got {y.dtype} {y.shape}.")
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise EvaluationError(
            f"Labels must lie in [0, {n_classes}), got [{y.min()}, {y.max()}]: "
            "the model's output has fewer classes than the data."
        )
    return y.astype(np.int64)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """``(C, C)`` counts: row = true class, column = predicted class."""
    counts = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes)


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    """Accuracy, loss, per-class precision/recall/F1, their macro averages and the confusion.

    A ratio whose denominator is zero is defined as 0: precision of a class never predicted,
    recall of a class absent from ``y_true``, F1 when precision + recall = 0. Macro averages are
    plain means over all ``C`` classes (the columns of ``proba``), such classes included.
    """
    proba = np.asarray(proba)
    if proba.ndim != 2 or proba.shape[0] != len(y_true) or len(y_true) == 0:
        raise EvaluationError(
            f"Need one probability row per label: got {proba.shape} for {len(y_true)} labels."
        )
    n_classes = proba.shape[1]
    y = _labels(y_true, n_classes)
    y_pred = proba.argmax(axis=1)
    cm = confusion_matrix(y, y_pred, n_classes)
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0)
    support = cm.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / denom, 0.0)
    return {
        "accuracy": float(tp.sum() / len(y)),
        "loss": categorical_crossentropy(y, proba),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "per_class": {
            "precision": precision.tolist(),
            "recall": recall.tolist(),
            "f1": f1.tolist(),
            "support": support.tolist(),
        },
        "confusion": cm.tolist(),
    }


def most_confident_wrong(y_true: np.ndarray, proba: np.ndarray, n: int) -> list[dict[str, Any]]:
    """The ``n`` misclassified images the model was surest of, surest first.

    Each entry: test-set ``index``, ``true`` and ``predicted`` class, and the ``probability``
    given to the (wrong) predicted class. Ties keep test-set order.
    """
    proba = np.asarray(proba)
    y = _labels(y_true, proba.shape[1])
    y_pred = proba.argmax(axis=1)
    wrong = np.flatnonzero(y_pred != y)
    confidence = proba[wrong, y_pred[wrong]]
    order = wrong[np.argsort(-confidence, kind="stable")][: max(n, 0)]
    return [
        {
            "index": int(i),
            "true": int(y[i]),
            "predicted": int(y_pred[i]),
            "probability": float(proba[i, y_pred[i]]),
        }
        for i in order
    ]


def predictions_csv(y_true: np.ndarray, proba: np.ndarray) -> str:
    """``actual,predicted`` per image: the table DVC's ``confusion`` plot template reads."""
    lines = ["actual,predicted"]
    lines += [f"{a},{p}" for a, p in zip(np.asarray(y_true), proba.argmax(axis=1), strict=True)]
    return "\n".join(lines) + "\n"


def per_class_table(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Per-class rows and macro averages, as written to ``per_class.json``."""
    pc = metrics["per_class"]
    rows = [
        {"class": c, "precision": p, "recall": r, "f1": f, "support": s}
        for c, (p, r, f, s) in enumerate(
            zip(pc["precision"], pc["recall"], pc["f1"], pc["support"], strict=True)
        )
    ]
    macro = {
        "precision": metrics["macro_precision"],
        "recall": metrics["macro_recall"],
        "f1": metrics["macro_f1"],
    }
    return {"per_class": rows, "macro": macro}


def metrics_entry(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """One model's entry of ``metrics.json``: the few numbers ``dvc metrics show`` should list,
    all reproduced exactly by an identical rerun (throughput goes to ``timing.json``)."""
    return {
        "test": {
            "accuracy": metrics["accuracy"],
            "loss": metrics["loss"],
            "macro_f1": metrics["macro_f1"],
        },
    }


def timing_entry(images_per_s: float) -> dict[str, Any]:
    """One model's entry of ``timing.json``."""
    return {"inference_images_per_s": round(float(images_per_s), 1)}


def mlflow_metrics(entry: Mapping[str, Any]) -> dict[str, float]:
    """The flat metric names logged to MLflow, from a ``metrics.json`` entry."""
    out = {}
    for name, keys in MLFLOW_METRICS.items():
        value: Any = entry
        for k in keys:
            value = value[k]
        out[name] = float(value)
    return out


# --------------------------------------------------------------------------------------
# MLflow: test metrics go to this execution's parent run (and its own training runs)
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoggedRun:
    """Where one model's test metrics were logged."""

    run_id: str  # the model's training run
    experiment: str
    # True when the training run belongs to an earlier execution (DVC restored the model) or
    # is not in this store: it is not written to.
    restored: bool
    parent_run_id: str  # this execution's parent run: test metrics and files
    model_id: str = ""
    registered_model: str = ""
    model_version: str = ""


def log_evaluation(
    client: Any,
    execution: tracking.Execution,
    run_info: Mapping[str, Any],
    metrics: Mapping[str, float],
    artifacts: Sequence[Path],
    test_dataset: Any,
) -> LoggedRun:
    """Log one model's test metrics and evaluation files; call under
    :func:`mlflow_store.store_lock`.

    ``run_info`` is the train stage's ``run.json``. The parent run gets ``<model>/<metric>``
    and the files under ``evaluate/<model>/``. The training run gets the metrics (linked to its
    logged model and the test set) only when it belongs to this execution: a run of a finished
    execution never changes.
    """
    import mlflow

    model = str(run_info.get("model") or "")
    run_id = str(run_info.get("run_id") or "")
    model_id = str(run_info.get("model_id") or "")
    restored = tracking.link_reused_run(client, execution, model, run_id)
    parent = execution.parent_run_id
    mlflow.log_metrics({f"{model}/{k}": v for k, v in metrics.items()}, run_id=parent)
    for path in artifacts:
        client.log_artifact(parent, str(path), artifact_path=f"evaluate/{model}")
    if restored:
        log.info(
            "%s: training run %s is from an earlier execution (outputs restored by DVC): "
            "linked from parent run %s, left unchanged.",
            model,
            run_id or "(none)",
            parent,
        )
    else:
        mlflow.log_metrics(
            dict(metrics), run_id=run_id, model_id=model_id or None, dataset=test_dataset
        )
    return LoggedRun(
        run_id,
        execution.experiment,
        restored,
        parent,
        model_id,
        str(run_info.get("registered_model") or ""),
        str(run_info.get("model_version") or ""),
    )


def log_model(
    uri: str,
    experiment: str,
    run_info: Mapping[str, Any],
    metrics: Mapping[str, float],
    artifacts: Sequence[Path],
    x: np.ndarray,
    y: np.ndarray,
) -> LoggedRun:
    """Log one model's evaluation to this execution's parent run (and its training run), under
    one store lock."""
    import mlflow
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.exceptions import MlflowException

    tracking.quiet_mlflow()
    test_dataset = tracking.dataset(x, y, TEST_DATASET, PROCESSED_MNIST)
    try:
        with mlflow_store.store_lock(uri):
            client = mlflow.MlflowClient(uri)
            mlflow.set_tracking_uri(uri)
            execution = tracking.open_execution(client, uri, experiment)
            context = InputTag(mlflow.utils.mlflow_tags.MLFLOW_DATASET_CONTEXT, "test")
            # The same dataset from every model's evaluation: MLflow records it once.
            client.log_inputs(
                execution.parent_run_id,
                [DatasetInput(test_dataset._to_mlflow_entity(), tags=[context])],
            )
            logged = log_evaluation(client, execution, run_info, metrics, artifacts, test_dataset)
            tracking.end_stage(client, execution)
    except MlflowException as exc:
        raise EvaluationError(
            f"Could not log the evaluation to MLflow ({uri}): {exc.message}"
        ) from exc
    return logged


# --------------------------------------------------------------------------------------
# Edge: file I/O
# --------------------------------------------------------------------------------------
def load_test_split(path: Path = PROCESSED_MNIST) -> tuple[np.ndarray, np.ndarray]:
    if not path.exists():
        raise EvaluationError(f"{path} not found: run `dvc repro preprocess` first.")
    with np.load(path) as data:
        missing = {"x_test", "y_test"} - set(data.files)
        if missing:
            raise EvaluationError(
                f"{path} lacks {sorted(missing)}: rerun `dvc repro preprocess` to rebuild it."
            )
        x, y = data["x_test"], data["y_test"]
    if x.ndim != 4 or len(x) != len(y) or not np.issubdtype(y.dtype, np.integer):
        raise EvaluationError(
            f"{path}: expected x_test (N, 28, 28, 1) and N integer labels, got x_test {x.shape} "
            f"and y_test {y.dtype} {y.shape}; rerun `dvc repro preprocess`."
        )
    return x, y.astype(np.int64)


def read_run_info(path: Path) -> dict[str, Any]:
    """The train stage's ``run.json``: which MLflow run and experiment hold the model."""
    info = read_json(path)
    if not isinstance(info, dict) or "experiment" not in info:
        raise EvaluationError(
            f"{path}: expected {{run_id, experiment, model}}, got {info!r}; rerun the train stage."
        )
    return info


def read_train_outputs(name: str) -> dict[str, Any]:
    """Check the model file exists and read its ``run.json`` (before any slow work)."""
    for path in (model_path(name), run_info_path(name)):
        if not path.exists():
            raise EvaluationError(f"{path} not found: run `dvc repro train@{name}` first.")
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

    model = keras.saving.load_model(model_path(name), compile=False)
    proba, images_per_s = timed_predict(model, x, cfg.batch_size)
    metrics = classification_metrics(y, proba)
    out = config.eval_dir(name)
    outputs.add_text(out / config.PREDICTIONS, predictions_csv(y, proba))
    outputs.add_json(out / config.CONFUSION, metrics["confusion"])
    outputs.add_json(out / config.PER_CLASS, per_class_table(metrics))
    outputs.add_json(out / config.WRONG, most_confident_wrong(y, proba, cfg.n_wrong))
    outputs.add_json(out / config.EVAL_LAYERS, layer_rows(model))
    log.info(
        "%s: test accuracy %.4f, loss %.4f, macro F1 %.4f, %.0f images/s",
        name,
        metrics["accuracy"],
        metrics["loss"],
        metrics["macro_f1"],
        images_per_s,
    )
    return metrics_entry(metrics) | {"params": int(model.count_params())}, images_per_s


def run_stage(params: Params, name: str, uri: str) -> None:
    """Evaluate one model, log to MLflow, then write every output at once.

    Nothing is written before the MLflow logging succeeds, so a failed evaluation never leaves
    metrics the gate could take for good ones; the inputs' digests are recorded beside them
    (:mod:`intro_cnn.evaluation.fingerprint`) so the gate can tell they belong to the current
    models.
    """
    if name not in params.models:
        raise EvaluationError(
            f"Unknown model {name!r} in params.yaml: valid names are {sorted(params.models)}."
        )
    run_info = read_train_outputs(name)
    inputs = fingerprint.for_model(params, name)
    x, y = load_test_split()
    outputs = files.Outputs()
    entry, images_per_s = evaluate_model(name, x, y, params.evaluate, outputs)
    out = config.eval_dir(name)
    timing = timing_entry(images_per_s)
    outputs.add_json(out / config.EVAL_METRICS, entry)
    outputs.add_json(out / config.EVAL_TIMING, timing)
    # MLflow before any output is written, from a staging copy of the files it records.
    with tempfile.TemporaryDirectory(prefix="intro-cnn-evaluate-") as tmp:
        outputs.copy_to(Path(tmp))
        logged = log_model(
            uri,
            params.train.experiment,
            run_info,
            mlflow_metrics(entry | timing),
            [Path(tmp) / out / f for f in MLFLOW_ARTIFACTS],
            x,
            y,
        )
    outputs.add_json(out / config.EVAL_RUN, asdict(logged))
    outputs.add_json(out / config.EVAL_INPUTS, inputs)
    with cli.committing():
        outputs.commit()


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    with cli.stage("evaluate"):
        if len(args) != 1:
            raise errors.StageError(
                "usage: python -m stages.evaluate MODEL (a model of params.yaml `models`; "
                "`dvc repro evaluate` evaluates them all)"
            )
        params = load_params()
        uri = mlflow_store.tracking_uri()
        mlflow_store.probe_store(uri)
        try:
            run_stage(params, args[0], uri)
        except (EvaluationError, OSError, ValueError) as exc:
            raise errors.StageError(str(exc)) from exc
