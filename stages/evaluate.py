"""Stage ``evaluate``: test every trained model, compare them, and check the notebook's claims.

For each model in params ``models`` it writes, under ``reports/evaluate/<model>/``:
``predictions.csv`` (``actual,predicted`` per test image: DVC's ``confusion`` plot),
``confusion.json`` (rows = true class), ``per_class.json`` (precision, recall, F1, support) and
``wrong.json`` (the most confidently wrong test images). Across models it writes the DVC metrics
file ``reports/evaluate/metrics.json`` (``cnn.test.accuracy``, ...), ``reports/comparison.md``
and ``.csv`` (one row per model), ``reports/evaluate/claims.json`` (the verdicts on the
notebook's two claims) and ``reports/evaluate/runs.json`` (the MLflow runs the test metrics went
to: each model's own training run, or a new one tagged ``restored=true`` when that run is not in
this store).

Keras and MLflow are imported where they are used, so importing this module (as ``stages.gate``
does) stays cheap.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stages import claims, cli, config, files, fingerprint, tracking
from stages.claims import Claim
from stages.config import (
    PROCESSED_MNIST,
    EvaluateConfig,
    Params,
    history_path,
    load_params,
    model_path,
    run_info_path,
    train_metrics_path,
    train_timing_path,
)
from stages.files import read_json, write_json

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

# How many first epochs of validation accuracy measure "how fast it rises".
EARLY_EPOCHS = 3


class EvaluationError(RuntimeError):
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


def metrics_json(entries: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The DVC metrics file, nested by model: ``dvc metrics show`` lists ``cnn.test.accuracy``."""
    return {name: dict(entry) for name, entry in entries.items()}


def write_metrics(path: str | os.PathLike[str], entries: Mapping[str, Mapping[str, Any]]) -> None:
    """Write the DVC metrics file (:func:`metrics_json`)."""
    write_json(path, metrics_json(entries))


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
# Pure core: comparison and claims
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ComparisonRow:
    """One model's line of the comparison table."""

    model: str
    params: int
    epochs: int
    train_seconds: float
    train_samples_per_s: float
    val_accuracy: float
    test_accuracy: float
    test_loss: float
    inference_images_per_s: float


def _english(claim: Claim) -> Claim:
    """The claim with its English statement and reason, for readers of claims.json."""
    text = claims.reason(claim, "en") + " " + claims.verdict_sentence(claim, "en")
    return replace(claim, statement=claims.statement(claim.id, "en"), reason=text)


def _claim_cnn_vs_mlp(rows: Mapping[str, ComparisonRow]) -> Claim:
    cid = "cnn_vs_mlp"
    missing = [m for m in ("cnn", "mlp") if m not in rows]
    if missing:
        return _english(Claim(cid, claims.NOT_CHECKED, missing=missing))
    cnn, mlp = rows["cnn"], rows["mlp"]
    ratio = cnn.params / mlp.params if mlp.params else float("inf")
    parts = {
        "better test accuracy": cnn.test_accuracy > mlp.test_accuracy,
        "far fewer parameters": ratio < 0.5,
    }
    evidence = {
        "cnn_test_accuracy": cnn.test_accuracy,
        "mlp_test_accuracy": mlp.test_accuracy,
        "cnn_params": cnn.params,
        "mlp_params": mlp.params,
        "params_ratio": ratio,
    }
    return _english(Claim(cid, claims.verdict_of(parts), parts, evidence))


def _claim_batchnorm(
    rows: Mapping[str, ComparisonRow], histories: Mapping[str, Sequence[float]]
) -> Claim:
    cid = "batchnorm"
    missing = [m for m in ("cnn_small_bn", "cnn_small") if m not in rows]
    if missing:
        return _english(Claim(cid, claims.NOT_CHECKED, missing=missing))
    bn, plain = rows["cnn_small_bn"], rows["cnn_small"]
    evidence: dict[str, float] = {
        "cnn_small_bn_val_accuracy": bn.val_accuracy,
        "cnn_small_val_accuracy": plain.val_accuracy,
        "cnn_small_bn_test_accuracy": bn.test_accuracy,
        "cnn_small_test_accuracy": plain.test_accuracy,
    }
    h_bn = list(histories.get("cnn_small_bn", []))
    h_plain = list(histories.get("cnn_small", []))
    k = min(EARLY_EPOCHS, len(h_bn), len(h_plain))
    faster: bool | None = None
    if k:
        early_bn, early_plain = float(np.mean(h_bn[:k])), float(np.mean(h_plain[:k]))
        faster = early_bn > early_plain
        evidence |= {
            "early_epochs": k,
            "cnn_small_bn_early_val_accuracy": early_bn,
            "cnn_small_early_val_accuracy": early_plain,
            "cnn_small_bn_epoch1_val_accuracy": float(h_bn[0]),
            "cnn_small_epoch1_val_accuracy": float(h_plain[0]),
        }
    parts = {
        "higher validation accuracy": bn.val_accuracy > plain.val_accuracy,
        "higher test accuracy": bn.test_accuracy > plain.test_accuracy,
        "faster early rise": faster,
    }
    return _english(Claim(cid, claims.verdict_of(parts), parts, evidence))


def judge_claims(
    rows: Sequence[ComparisonRow], histories: Mapping[str, Sequence[float]]
) -> list[Claim]:
    """Check the notebook's two claims against the measured numbers.

    ``histories`` maps a model to its validation accuracy per epoch (epoch 1 first). A claim
    whose models are not all present is ``not checked``; one whose parts disagree ``partly
    holds``. "Better" means strictly greater.
    """
    by_name = {r.model: r for r in rows}
    return [_claim_cnn_vs_mlp(by_name), _claim_batchnorm(by_name, histories)]


_CSV_COLUMNS = [f.name for f in fields(ComparisonRow)]


def comparison_csv(rows: Sequence[ComparisonRow]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=_CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(asdict(row))
    return buf.getvalue()


def comparison_markdown(rows: Sequence[ComparisonRow], judged: Sequence[Claim]) -> str:
    """The comparison table, then each claim with its verdict and the numbers behind it."""
    lines = [
        "# Model comparison",
        "",
        "| Model | Parameters | Epochs | Training time (s) | Training samples/s "
        "| Validation accuracy | Test accuracy | Test loss | Inference images/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.params:,} | {r.epochs} | {r.train_seconds:.1f} "
            f"| {r.train_samples_per_s:,.0f} | {r.val_accuracy:.4f} | {r.test_accuracy:.4f} "
            f"| {r.test_loss:.4f} | {r.inference_images_per_s:,.0f} |"
        )
    lines += ["", "## The notebook's claims, checked", ""]
    for i, c in enumerate(judged, 1):
        lines += [f"{i}. **{c.statement}**", "", f"   Verdict: **{c.verdict}**. {c.reason}", ""]
    return "\n".join(lines)


def claims_json(judged: Sequence[Claim]) -> list[dict[str, Any]]:
    return [asdict(c) for c in judged]


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
    """Log one model's test metrics and evaluation files; call under :func:`tracking.store_lock`.

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


def log_stage(
    uri: str,
    experiment: str,
    infos: Mapping[str, Mapping[str, Any]],
    metrics: Mapping[str, Mapping[str, float]],
    artifacts: Mapping[str, Sequence[Path]],
    shared: Sequence[Path],
    x: np.ndarray,
    y: np.ndarray,
) -> dict[str, LoggedRun]:
    """Log the whole evaluation to this execution's parent run, under one store lock."""
    import mlflow
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.exceptions import MlflowException

    tracking.quiet_mlflow()
    test_dataset = tracking.dataset(x, y, TEST_DATASET, PROCESSED_MNIST)
    try:
        with tracking.store_lock(uri):
            client = mlflow.MlflowClient(uri)
            mlflow.set_tracking_uri(uri)
            execution = tracking.open_execution(client, uri, experiment)
            context = InputTag(mlflow.utils.mlflow_tags.MLFLOW_DATASET_CONTEXT, "test")
            client.log_inputs(
                execution.parent_run_id,
                [DatasetInput(test_dataset._to_mlflow_entity(), tags=[context])],
            )
            runs = {
                name: log_evaluation(
                    client, execution, infos[name], metrics[name], artifacts[name], test_dataset
                )
                for name in infos
            }
            for path in shared:
                client.log_artifact(execution.parent_run_id, str(path), artifact_path="evaluate")
            tracking.end_stage(client, execution)
    except MlflowException as exc:
        raise EvaluationError(
            f"Could not log the evaluation to MLflow ({uri}): {exc.message}"
        ) from exc
    return runs


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


def read_val_history(path: Path) -> list[float]:
    """Validation accuracy per epoch (epoch 1 first) from a train stage's history CSV."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"epoch", "val_accuracy"} <= set(reader.fieldnames):
            raise EvaluationError(
                f"{path}: needs columns epoch and val_accuracy, has {reader.fieldnames}; "
                "rerun the train stage."
            )
        rows = sorted(reader, key=lambda r: int(r["epoch"]))
    return [float(r["val_accuracy"]) for r in rows]


def read_train_summary(path: Path, timing_path: Path) -> dict[str, float]:
    """Epochs and validation accuracy from a train ``metrics.json``, wall time and throughput
    from its ``timing.json``."""
    data, timing = read_json(path), read_json(timing_path)
    try:
        return {
            "epochs": int(data["epochs"]),
            "wall_seconds": float(timing["wall_seconds"]),
            "samples_per_second": float(timing["samples_per_second"]),
            "val_accuracy": float(data["val"]["accuracy"]),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise EvaluationError(
            f"{path} / {timing_path.name}: missing or bad key {exc}; they need epochs and "
            "val.accuracy, wall_seconds and samples_per_second. Rerun the train stage."
        ) from None


def read_run_info(path: Path) -> dict[str, Any]:
    """The train stage's ``run.json``: which MLflow run and experiment hold the model."""
    info = read_json(path)
    if not isinstance(info, dict) or "experiment" not in info:
        raise EvaluationError(
            f"{path}: expected {{run_id, experiment, model}}, got {info!r}; rerun the train stage."
        )
    return info


@dataclass(frozen=True)
class TrainOutputs:
    """What the train stage left for one model, read and checked before any slow work."""

    summary: Mapping[str, float]
    val_history: list[float]
    run_info: Mapping[str, Any]


def read_train_outputs(name: str) -> TrainOutputs:
    """Check one model's train outputs exist and read the small ones."""
    paths = (
        model_path(name),
        train_metrics_path(name),
        train_timing_path(name),
        history_path(name),
        run_info_path(name),
    )
    for path in paths:
        if not path.exists():
            raise EvaluationError(f"{path} not found: run `dvc repro train@{name}` first.")
    return TrainOutputs(
        read_train_summary(train_metrics_path(name), train_timing_path(name)),
        read_val_history(history_path(name)),
        read_run_info(run_info_path(name)),
    )


def evaluate_model(
    name: str,
    train: TrainOutputs,
    x: np.ndarray,
    y: np.ndarray,
    cfg: EvaluateConfig,
    outputs: files.Outputs,
) -> tuple[dict[str, Any], ComparisonRow]:
    """Evaluate one saved model, add its per-model files to ``outputs``; return its metrics
    entry and comparison row."""
    import keras

    model = keras.saving.load_model(model_path(name), compile=False)
    proba, images_per_s = timed_predict(model, x, cfg.batch_size)
    metrics = classification_metrics(y, proba)
    out = config.eval_dir(name)
    outputs.add_text(out / config.PREDICTIONS, predictions_csv(y, proba))
    outputs.add_json(out / config.CONFUSION, metrics["confusion"])
    outputs.add_json(out / config.PER_CLASS, per_class_table(metrics))
    outputs.add_json(out / config.WRONG, most_confident_wrong(y, proba, cfg.n_wrong))
    entry = metrics_entry(metrics) | timing_entry(images_per_s)
    row = ComparisonRow(
        model=name,
        params=int(model.count_params()),
        epochs=int(train.summary["epochs"]),
        train_seconds=train.summary["wall_seconds"],
        train_samples_per_s=train.summary["samples_per_second"],
        val_accuracy=train.summary["val_accuracy"],
        test_accuracy=metrics["accuracy"],
        test_loss=metrics["loss"],
        inference_images_per_s=entry["inference_images_per_s"],
    )
    log.info(
        "%s: test accuracy %.4f, loss %.4f, macro F1 %.4f, %.0f images/s",
        name,
        metrics["accuracy"],
        metrics["loss"],
        metrics["macro_f1"],
        images_per_s,
    )
    return entry, row


def run_stage(params: Params, uri: str) -> None:
    """Evaluate every model, log to MLflow, then write every output at once.

    Nothing is written before the MLflow logging succeeds, so a failed evaluation never leaves
    metrics the gate could take for good ones; the inputs' digests are recorded beside them
    (:mod:`stages.fingerprint`) so the gate can tell they belong to the current models.
    """
    names, cfg = list(params.models), params.evaluate
    if not names:
        raise EvaluationError("No models to evaluate: params.yaml `models` is empty.")
    # Read every small input first, so a missing or malformed one fails before the slow work.
    train = {name: read_train_outputs(name) for name in names}
    inputs = fingerprint.fingerprint(params)
    x, y = load_test_split()
    outputs = files.Outputs()
    entries: dict[str, dict[str, Any]] = {}
    rows: list[ComparisonRow] = []
    for name in names:
        entries[name], row = evaluate_model(name, train[name], x, y, cfg, outputs)
        rows.append(row)
    judged = judge_claims(rows, {name: t.val_history for name, t in train.items()})
    outputs.add_json(
        config.EVAL_TIMING,
        {name: timing_entry(e["inference_images_per_s"]) for name, e in entries.items()},
    )
    outputs.add_text(config.COMPARISON_CSV, comparison_csv(rows))
    outputs.add_text(config.COMPARISON_MD, comparison_markdown(rows, judged))
    outputs.add_json(config.EVAL_CLAIMS, claims_json(judged))
    for c in judged:
        log.info("Claim %s: %s", c.id, c.verdict)

    # MLflow before any output is written, from a staging copy of the files it records.
    with tempfile.TemporaryDirectory(prefix="intro-cnn-evaluate-") as tmp:
        outputs.copy_to(Path(tmp))
        logged = log_stage(
            uri,
            params.train.experiment,
            {name: train[name].run_info for name in names},
            {name: mlflow_metrics(entries[name]) for name in names},
            {
                name: [Path(tmp) / config.eval_dir(name) / f for f in MLFLOW_ARTIFACTS]
                for name in names
            },
            [Path(tmp) / config.COMPARISON_MD, Path(tmp) / config.EVAL_CLAIMS],
            x,
            y,
        )
    outputs.add_json(config.EVAL_RUNS, {name: asdict(run) for name, run in logged.items()})
    outputs.add_json(config.EVAL_INPUTS, inputs)
    quality = {name: {"test": entry["test"]} for name, entry in entries.items()}
    outputs.add_json(config.EVAL_METRICS, metrics_json(quality))
    with cli.committing():
        outputs.commit()


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with cli.stage("evaluate"):
        params = load_params()
        uri = tracking.tracking_uri()
        tracking.probe_store(uri)
        try:
            run_stage(params, uri)
        except (EvaluationError, OSError, ValueError) as exc:
            raise cli.StageError(str(exc)) from exc


if __name__ == "__main__":
    main()
