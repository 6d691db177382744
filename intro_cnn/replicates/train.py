"""The ``replicate`` stage's work: train one model of the registry with another seed, test it
in the same process, and record the training as an MLflow child run tagged with its replicate
(``python -m stages.replicate <model> <seed>``).

It trains exactly as the train stage does (:func:`intro_cnn.training.train.build`, the same
fit, precision and params), with only the seed changed, and saves the model apart from the
designated ones (``replicates/<model>-<seed>.keras``): no figure, serving or registry code sees
it. Testing here, where the model is already in memory, spares a process and a TensorFlow
start-up per replicate; the gate measures the saved file again.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from intro_cnn import config
from intro_cnn.data.dataset import load_processed
from intro_cnn.evaluation import metrics
from intro_cnn.evaluation.evaluate import load_test_split
from intro_cnn.replicates.outputs import metrics_json
from intro_cnn.runtime import cli, files
from intro_cnn.runtime.errors import ConfigError
from intro_cnn.tracking import train_mlflow
from intro_cnn.training import train
from intro_cnn.training.fitting import fit
from intro_cnn.training.tf_settings import (
    configure_tensorflow,
    distribution_scope,
    resolve_precision,
)
from intro_cnn.training.train_outputs import history_csv, save_model

log = logging.getLogger(__name__)


def check_ready(name: str, seed: int, params: config.Params) -> None:
    """Refuse a replicate params.yaml does not ask for, before TensorFlow loads."""
    train.check_ready(name, params)
    if seed not in params.replicate_seeds(name):
        asked = ", ".join(map(str, params.replicate_seeds(name))) or "none"
        raise ConfigError(
            f"{config.PARAMS_FILE}: {name} seed {seed} is not a replicate "
            f"(`replicates` asks for seeds: {asked}); `dvc repro replicate` trains those."
        )


def test_entry(model: Any, batch_size: int) -> dict[str, float]:
    """Test accuracy, loss and macro-F1 on the processed test split, as evaluate measures."""
    x, y = load_test_split()
    scores = metrics.classification_metrics(y, metrics.predict_proba(model, x, batch_size))
    return metrics.metrics_entry(scores)["test"]


def run(name: str, seed: int, params: config.Params, verbose: int | str = "auto") -> dict:
    """Train ``name`` with ``seed``, test it and write the replicate's outputs at once."""
    start_ms = int(time.time() * 1000)
    configure_tensorflow(seed, params.train.deterministic)
    data = load_processed()
    precision = resolve_precision(params.train.precision)
    with distribution_scope(params.train.strategy) as replicas:
        model = train.build(name, precision, seed, params.train.strategy, replicas)
        logged = train.logged_params(name, params, precision, replicas, data) | {"seed": seed}
        mlrun = train_mlflow.open_training_run(
            name, params.train.experiment, logged, data, start_ms, replicate=seed
        )
        with train_mlflow.ending_honestly(mlrun):
            result = fit(
                model, data, params.model(name), params.train, seed, verbose, mlrun.live_metrics
            )
            summary, timing = train.summarise(name, model, result)
            test = test_entry(model, params.evaluate.batch_size)
            entry = metrics_json(seed, test, result.history)
            record = train_mlflow.close_replicate_run(mlrun, result, summary | timing | entry)
            folder = config.replicate_dir(name, seed)
            with cli.committing():
                save_model(model, config.replicate_model_path(name, seed))
                files.write_text(folder / config.REPLICATE_HISTORY, history_csv(result.history))
                files.write_json(folder / config.REPLICATE_METRICS, entry)
                files.write_json(folder / config.REPLICATE_RUN, record | {"timing": timing})
    log.info(
        "%s seed %d: test accuracy %.4f (MLflow run %s)",
        name,
        seed,
        entry["test"]["accuracy"],
        record["run_id"],
    )
    return entry
