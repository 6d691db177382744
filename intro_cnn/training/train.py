"""The ``train`` stage's work: fit one model of the registry, save it, and record the run in
MLflow (``python -m stages.train <model>``).

:func:`check_ready` refuses a bad model name, missing data or an unreachable store before
TensorFlow loads; :func:`run` then ties the pieces together: the TensorFlow settings of
:mod:`intro_cnn.training.tf_settings`, the fit of :mod:`intro_cnn.training.fitting`, the
outputs of :mod:`intro_cnn.training.train_outputs` (history, metrics, timing, the model file)
and the MLflow run of :mod:`intro_cnn.tracking.train_mlflow`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from intro_cnn import config, tracking
from intro_cnn.data.dataset import load_processed
from intro_cnn.models import build_model
from intro_cnn.runtime import cli, files
from intro_cnn.runtime.errors import ConfigError, StageError
from intro_cnn.tracking import mlflow_store, train_mlflow
from intro_cnn.training.fitting import fit
from intro_cnn.training.tf_settings import (
    configure_tensorflow,
    distribution_scope,
    resolve_precision,
)
from intro_cnn.training.train_outputs import (
    TrainResult,
    history_csv,
    metrics_summary,
    save_model,
    timing_summary,
)

log = logging.getLogger(__name__)


def check_ready(name: str, params: config.Params) -> None:
    """Refuse a model ``params`` does not define, a missing processed dataset and a store that
    does not answer: checked before TensorFlow loads, so none of them costs a whole training."""
    if name not in params.models:
        raise ConfigError(
            f"{config.PARAMS_FILE}: no model {name!r} in `models`; "
            f"valid names: {', '.join(params.models)}."
        )
    if not config.PROCESSED_MNIST.exists():
        raise StageError(f"{config.PROCESSED_MNIST} is missing: run `dvc repro preprocess` first.")
    mlflow_store.probe_store(mlflow_store.tracking_uri())


def build(name: str, precision: str, seed: int, strategy: str, replicas: int) -> Any:
    """Build ``name`` under ``precision`` and say how it trains, in one line."""
    model = build_model(name, precision)
    log.info(
        "training %s (%d parameters), seed %d, %s, strategy %s (%d replica(s))",
        name,
        model.count_params(),
        seed,
        precision,
        strategy,
        replicas,
    )
    return model


def logged_params(
    name: str, params: config.Params, precision: str, replicas: int, data: Mapping[str, Any]
) -> dict[str, Any]:
    """The MLflow params of training ``name``: its recipe and how this run executes it."""
    return {
        "model": name,
        **asdict(params.model(name)),
        "seed": params.seed_for(name),
        "steps_per_execution": params.train.steps_per_execution,
        "deterministic": params.train.deterministic,
        "prefetch": params.train.prefetch,
        "precision": precision,
        "strategy": params.train.strategy,
        "replicas": replicas,
        "validation_split": params.preprocess.validation_split,
        "n_train": len(data["x_train"]),
        "n_val": len(data["x_val"]),
    }


def summarise(name: str, model: Any, result: TrainResult) -> tuple[dict, dict]:
    """The DVC metrics and the timing of a finished fit, logged in one line."""
    summary = metrics_summary(result, model.count_params())
    timing = timing_summary(result)
    log.info(
        "%s: val_accuracy %.4f after %d epochs, %.1f s, %.0f samples/s",
        name,
        summary["val"]["accuracy"],
        summary["epochs"],
        timing["wall_seconds"],
        timing["samples_per_second"],
    )
    return summary, timing


def run_info(
    name: str, params: config.Params, precision: str, mlrun: train_mlflow.TrainingRun, record: dict
) -> dict[str, Any]:
    """``run.json``: the MLflow run, parent run and logged model, and what ran."""
    return {
        **record,
        "experiment": params.train.experiment,
        "dvc_exp_name": mlrun.execution.tags.get(tracking.DVC_EXP_TAG, ""),
        "model": name,
        "precision": precision,
    }


def write_outputs(
    name: str,
    model: Any,
    result: TrainResult,
    summary: dict[str, Any],
    timing: dict[str, Any],
    info: dict[str, Any],
) -> None:
    """Write the stage's five outputs as one commit (:func:`intro_cnn.runtime.cli.committing`)."""
    with cli.committing():
        save_model(model, config.model_path(name))
        files.write_text(config.history_path(name), history_csv(result.history))
        files.write_json(config.train_metrics_path(name), summary)
        files.write_json(config.train_timing_path(name), timing)
        files.write_json(config.run_info_path(name), info)


def run(name: str, params: config.Params, verbose: int | str = "auto") -> dict[str, Any]:
    """Train ``name`` from the processed data and write every output of the stage.

    The training is a child run of this pipeline execution's parent run; per-epoch metrics
    appear in MLflow as epochs end; an error, Ctrl-C or SIGTERM ends both runs FAILED/KILLED.
    """
    seed = params.seed_for(name)
    start_ms = int(time.time() * 1000)
    configure_tensorflow(seed, params.train.deterministic)
    data = load_processed()
    precision = resolve_precision(params.train.precision)
    # Build, compile and fit in one strategy scope (one replica without "mirrored").
    with distribution_scope(params.train.strategy) as replicas:
        model = build(name, precision, seed, params.train.strategy, replicas)
        mlrun = train_mlflow.open_training_run(
            name,
            params.train.experiment,
            logged_params(name, params, precision, replicas, data),
            data,
            start_ms,
        )
        with train_mlflow.ending_honestly(mlrun):
            result = fit(
                model, data, params.model(name), params.train, seed, verbose, mlrun.live_metrics
            )
            summary, timing = summarise(name, model, result)
            record = train_mlflow.close_training_run(
                mlrun, name, model, result, summary | timing, data["x_val"][:5]
            )
            info = run_info(name, params, precision, mlrun, record)
            write_outputs(name, model, result, summary, timing, info)
        log.info(
            "MLflow run %s (parent %s), logged model %s (the gate registers it as %s)",
            mlrun.run_id,
            mlrun.execution.parent_run_id,
            record["model_id"],
            record["registered_model"],
        )
    return summary
