"""Where the evaluate stage logs one model's test metrics and files in MLflow: this pipeline
execution's parent run always, the model's own training run when it belongs to this same
execution (a run of a finished execution never changes).

MLflow is imported where it is used, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from intro_cnn import tracking
from intro_cnn.config import PROCESSED_MNIST
from intro_cnn.evaluation.errors import EvaluationError, reported_as
from intro_cnn.tracking import mlflow_store

log = logging.getLogger(__name__)

TEST_DATASET = "mnist-test"  # the MLflow dataset the test metrics are computed on
# Names of the test metrics in MLflow (in the parent run as "<model>/<name>").
MLFLOW_METRICS = {
    "test_accuracy": ("test", "accuracy"),
    "test_loss": ("test", "loss"),
    "test_macro_f1": ("test", "macro_f1"),
    "inference_images_per_s": ("inference_images_per_s",),
}


def mlflow_metrics(entry: Mapping[str, Any]) -> dict[str, float]:
    """The flat metric names logged to MLflow, from a ``metrics.json`` entry."""
    out = {}
    for name, keys in MLFLOW_METRICS.items():
        value: Any = entry
        for k in keys:
            value = value[k]
        out[name] = float(value)
    return out


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
        with reported_as(EvaluationError), mlflow_store.store_lock(uri):
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
