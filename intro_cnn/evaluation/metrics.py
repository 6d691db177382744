"""What the evaluate stage computes from a model's predictions on the test split: class
probabilities and throughput, accuracy, loss, per-class precision/recall/F1, the confusion
matrix, the most confidently wrong images, and the entries of its JSON files.

Pure except :func:`predict_proba` and :func:`timed_predict`, which run the model they are given
(Keras is never imported here). The gate measures models again with the same functions
(:mod:`intro_cnn.evaluation.evidence`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from intro_cnn.evaluation.errors import EvaluationError

if TYPE_CHECKING:
    import keras


# Keras' backend epsilon: probabilities are clipped to [EPS, 1 - EPS] before the log, so a
# confidently wrong answer costs -log(1e-7) ~ 16.1 rather than infinity.
EPS = 1e-7


def predict_proba(model: keras.Model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Class probabilities ``(N, C)`` of ``model`` on ``x``, batch by batch.

    One ``predict_on_batch`` per batch rather than ``predict``: the same compiled function on
    the same batches, without the ``tf.data`` pipeline Keras builds for NumPy input, whose
    parallel map makes TensorFlow log an ``E0000 ... use_unbounded_threadpool`` line under op
    determinism.

    Raises if the output is not a probability distribution per row (e.g. a model ending in
    logits instead of softmax), since every metric below assumes one.
    """
    if len(x) == 0:
        raise EvaluationError("No images to predict on.")
    proba = np.concatenate(
        [
            np.asarray(model.predict_on_batch(x[start : start + batch_size]))
            for start in range(0, len(x), batch_size)
        ]
    )
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
