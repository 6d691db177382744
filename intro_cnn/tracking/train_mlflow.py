"""The MLflow side of one training: its child run under the execution's parent (params, the
dataset input, library versions), per-epoch metrics while it trains, and at the end its summary,
files and the logged model, tagged with its file's digest. A training registers nothing: the
gate registers the logged models it passed (:func:`intro_cnn.tracking.registry.promote`), so a
teammate who may log runs on a shared server cannot change what is served.

:func:`open_training_run` and :func:`close_training_run` take the store's lock for their writes;
:func:`start_training_run`, which the first calls, writes without it: call it under
:func:`intro_cnn.tracking.mlflow_store.store_lock` (:func:`live_metrics` takes the lock itself,
once per epoch). MLflow and Keras are imported inside the functions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from intro_cnn import config, tracking
from intro_cnn.runtime import files
from intro_cnn.tracking import identity, mlflow_store, serving
from intro_cnn.training.train_outputs import (
    HISTORY_COLUMNS,
    TrainResult,
    history_csv,
    model_file_sha256,
    model_summary_text,
)

# Distributions whose resolved versions every MLflow run records (tags ``versions.<name>``):
# the numbers depend on them. TensorFlow installs as tensorflow-cpu on Linux x86-64.
RECORDED_LIBRARIES = {
    "tensorflow": ("tensorflow-cpu", "tensorflow"),
    "keras": ("keras",),
    "mlflow": ("mlflow",),
    "dvc": ("dvc",),
}


def library_versions() -> dict[str, str]:
    """``versions.<library>`` tags: the installed version of each of RECORDED_LIBRARIES."""
    from importlib import metadata

    tags = {}
    for name, distributions in RECORDED_LIBRARIES.items():
        version = "not installed"
        for dist in distributions:
            try:
                version = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
        tags[f"versions.{name}"] = version
    return tags


TRAINING_DATASET = "mnist-train"  # the MLflow dataset input of every training run


def live_metrics(client: Any, uri: str, run_id: str, timer: Any) -> Any:
    """A Keras callback logging each epoch's metrics to the MLflow run as the epoch ends, so
    the UI shows progress during a long training (one short locked write per epoch)."""
    import keras
    from mlflow.entities import Metric

    class LiveMetrics(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs = dict(logs or {})
            if timer.seconds:
                logs["seconds"] = timer.seconds[-1]
            now = tracking.now_ms()
            batch = [
                Metric(key, float(logs[key]), now, epoch + 1)
                for key in (*HISTORY_COLUMNS, "seconds")
                if key in logs
            ]
            with mlflow_store.store_lock(uri):
                client.log_batch(run_id, metrics=batch)

    return LiveMetrics()


def start_training_run(
    client: Any,
    execution: tracking.Execution,
    name: str,
    params: Mapping[str, Any],
    dataset: Any,
    start_time_ms: int,
    replicate: int | None = None,
) -> str:
    """Create the child run of one training under the execution's parent; return its id.

    Params and the dataset input are logged up front, so the run is useful while it trains.
    A replicate's run (``replicate`` = its seed) is tagged as one and named ``<model>-<seed>``.
    """
    import mlflow
    from mlflow.entities import DatasetInput, InputTag, Param

    tags = tracking.child_run_tags(execution, name)
    tags["data_sha256"] = files.file_sha256(config.PROCESSED_MNIST)
    tags |= library_versions()
    run_name = name
    if replicate is not None:
        run_name = config.replicate_name(name, replicate)
        tags |= {
            tracking.ROLE_TAG: tracking.ROLE_REPLICATE,
            tracking.REPLICATE_TAG: str(replicate),
            tracking.SOURCE_NAME_TAG: tracking.REPLICATE_SOURCE,
        }
    run = client.create_run(
        execution.experiment_id, start_time=start_time_ms, tags=tags, run_name=run_name
    )
    run_id = run.info.run_id
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
    context = InputTag(key=mlflow.utils.mlflow_tags.MLFLOW_DATASET_CONTEXT, value="training")
    client.log_inputs(run_id, [DatasetInput(dataset._to_mlflow_entity(), tags=[context])])
    return run_id


def log_trained_model(model: Any, name: str, input_example: np.ndarray) -> Any:
    """Log ``model`` into the active MLflow run as the LoggedModel ``name``, tagged with its
    file's digest and its card (:func:`intro_cnn.tracking.logged_model_tags`); return MLflow's
    ModelInfo.

    The one place that decides what is logged and served: the model wrapped with its input
    checks (:mod:`intro_cnn.tracking.serving`: raw 0-255 images or the normalised tensor).
    """
    import mlflow

    info = serving.log_model(model, name=name, input_example=serving.raw_images(input_example))
    layers = [type(layer).__name__ for layer in model.layers]
    tags = tracking.logged_model_tags(layers, model.count_params(), model_file_sha256(model))
    mlflow.set_logged_model_tags(info.model_id, tags)
    return info


@dataclass(frozen=True)
class TrainingRun:
    """One training's MLflow run: the store, the execution it belongs to, the child run."""

    client: Any
    uri: str
    execution: tracking.Execution
    run_id: str

    def live_metrics(self, timer: Any) -> Any:
        """:func:`live_metrics` into this run."""
        return live_metrics(self.client, self.uri, self.run_id, timer)


def close_training_run(
    run: TrainingRun,
    name: str,
    model: Any,
    result: TrainResult,
    summary: Mapping[str, Any],
    input_example: np.ndarray,
) -> dict[str, Any]:
    """Log the run's summary, files and model, end it FINISHED and end this stage in the
    parent run, under the store lock. Returns what ``run.json`` records about it (ids of the
    run, its parent and its logged model, which the gate registers when it passes)."""
    import mlflow
    from mlflow.entities import Metric

    client, run_id = run.client, run.run_id
    with mlflow_store.store_lock(run.uri):
        now = tracking.now_ms()
        keys = ("wall_seconds", "samples_per_second", "params")
        metrics = [Metric(k, float(summary[k]), now, 0) for k in keys]
        client.log_batch(run_id, metrics=metrics)
        client.log_text(run_id, model_summary_text(model), "model_summary.txt")
        client.log_text(run_id, history_csv(result.history), "history.csv")
        with mlflow.start_run(run_id=run_id):
            info = log_trained_model(model, name, input_example)
        client.set_terminated(run_id, "FINISHED")
        record = {
            "run_id": run_id,
            "parent_run_id": run.execution.parent_run_id,
            "model_id": info.model_id,
            "registered_model": tracking.registered_model_name(name),
        }
        tracking.end_stage(client, run.execution)
    return record


def close_replicate_run(
    run: TrainingRun, result: TrainResult, summary: Mapping[str, Any]
) -> dict[str, Any]:
    """End a replicate's run FINISHED with its test metrics and history (a replicate logs no
    model: only the designated model is registered and served). Returns its ``run.json``."""
    from mlflow.entities import Metric

    with mlflow_store.store_lock(run.uri):
        now = tracking.now_ms()
        numbers = {f"test_{k}": v for k, v in summary["test"].items()}
        numbers |= {k: summary[k] for k in ("wall_seconds", "samples_per_second", "params")}
        run.client.log_batch(
            run.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in numbers.items()]
        )
        run.client.log_text(run.run_id, history_csv(result.history), "history.csv")
        run.client.set_terminated(run.run_id, "FINISHED")
        tracking.end_stage(run.client, run.execution)
    return {"run_id": run.run_id, "parent_run_id": run.execution.parent_run_id}


def open_training_run(
    name: str,
    experiment: str,
    params: Mapping[str, Any],
    data: Mapping[str, np.ndarray],
    start_time_ms: int,
    replicate: int | None = None,
) -> TrainingRun:
    """Join (or create) this execution's parent run in ``experiment`` and start the child run
    of training ``name`` with ``params`` and the training split of ``data`` as its input."""
    import mlflow

    uri = mlflow_store.tracking_uri()
    tracking.quiet_mlflow()
    dataset = tracking.dataset(
        data["x_train"], data["y_train"], TRAINING_DATASET, config.PROCESSED_MNIST
    )
    from mlflow.exceptions import MlflowException

    with mlflow_store.store_lock(uri):  # the first use of a new store migrates its schema
        client = mlflow.MlflowClient(uri)
        mlflow.set_tracking_uri(uri)
        try:
            execution = tracking.open_execution(client, uri, experiment)
            run_id = start_training_run(
                client, execution, name, params, dataset, start_time_ms, replicate
            )
        except MlflowException as exc:  # a shared server that does not let this user log runs
            fix = f"ask the server's admin for EDIT on experiment {experiment!r} (docs/team.md)"
            said = identity.refusal(exc, f"log runs to experiment {experiment!r}", fix)
            if said:
                raise tracking.TrackingError(said) from None
            raise
    return TrainingRun(client, uri, execution, run_id)


@contextlib.contextmanager
def ending_honestly(run: TrainingRun) -> Iterator[None]:
    """If the block raises (an error, Ctrl-C, SIGTERM), end the run and its parent FAILED or
    KILLED (:func:`intro_cnn.tracking.ends_honestly`)."""
    with tracking.ends_honestly(run.client, run.uri, [run.run_id, run.execution.parent_run_id]):
        yield
