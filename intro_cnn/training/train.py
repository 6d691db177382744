"""Stage ``train``: fit one model of the registry, save it, and record the run in MLflow.

    python -m stages.train cnn

Semantics are the notebook's ``model.fit(x, y, batch_size=128, validation_split=0.1)`` with
Adam and categorical cross-entropy: the validation rows are the last 10 % of the training set
(made explicit by the preprocess stage), the training rows are reshuffled every epoch.

What makes it faster than the notebook, without changing those semantics:
- a lean input pipeline (``input_datasets``): the arrays are handed to TF once, each epoch
  shuffles only the row indices and each batch is one ``gather``. Keras' own NumPy adapter
  adds a parallel map and an autotuned prefetch whose background threads, on a 2-core
  machine, take a core away from the training step; ``train.prefetch`` turns prefetching back
  on where it pays (a GPU);
- ``steps_per_execution`` runs many batches per call into the compiled TF graph, so Python and
  the callbacks run once per chunk instead of once per batch;
- ``train.precision: auto`` trains in Keras' ``mixed_bfloat16`` (float32 weights, bfloat16
  arithmetic, float32 softmax) where the hardware has bfloat16 units (AMX on recent Xeons,
  tensor cores from Ampere on), float32 elsewhere. This changes rounding, not the training
  recipe; ``benchmarks/train_speed.py`` compares test accuracy with the notebook's fit;
- BatchNormalization layers train with TF's fused kernel (``models.fused_batch_norm``: Keras'
  semantics, standard layers), not Keras' graph of reductions, which more than doubled
  ``cnn_small_bn``'s epoch (``benchmarks/README.md``).
Determinism (same params + data → identical history) comes from seeding everything once and
enabling TF op determinism; see ``train.deterministic`` in params.yaml.

What a training writes (history, metrics, timing, the model file) is in
:mod:`intro_cnn.training.train_outputs`; its MLflow run and registered model in
:mod:`intro_cnn.tracking.train_mlflow`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from typing import Any

import numpy as np

from intro_cnn import config, tracking
from intro_cnn.config import ModelConfig, TrainConfig
from intro_cnn.models import fused_batch_norm
from intro_cnn.runtime import cli, errors, files, tf_import
from intro_cnn.tracking import mlflow_store
from intro_cnn.tracking.train_mlflow import (
    TRAINING_DATASET,
    finish_training_run,
    live_metrics,
    start_training_run,
)
from intro_cnn.training.train_outputs import (
    HISTORY_COLUMNS,
    TrainResult,
    history_csv,
    metrics_summary,
    save_model,
    timing_summary,
)

log = logging.getLogger(__name__)


def configure_tensorflow(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and TF, and optionally require deterministic TF ops."""
    with tf_import.importing_tensorflow():
        import keras
        import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def compile_model(model: Any, cfg: ModelConfig, steps_per_execution: int) -> None:
    import keras

    optimizers = {"adam": keras.optimizers.Adam}
    if cfg.optimizer not in optimizers:
        raise ValueError(
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


def native_bfloat16(
    cpu_flags: frozenset[str], gpu_capabilities: list[tuple[int, int]], onednn: bool
) -> bool:
    """Whether training runs bfloat16 natively: on every GPU (compute capability >= 8.0,
    Ampere on), or, with no GPU, on a CPU with AMX-BF16 through oneDNN."""
    if gpu_capabilities:
        return all(cc >= (8, 0) for cc in gpu_capabilities)
    return onednn and "amx_bf16" in cpu_flags


def onednn_isa_cap() -> str:
    """oneDNN's instruction-set cap (``ONEDNN_MAX_CPU_ISA``, e.g. ``AVX2``; ``ALL`` when unset)."""
    return os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper() or "ALL"


def isa_cap_allows(cap: str, feature: str) -> bool:
    """Whether oneDNN capped at ``cap`` keeps its ``feature`` kernels (``"AMX"`` or ``"BF16"``).

    TensorFlow decides to hand bfloat16 to oneDNN from the CPU's flags alone, so under a cap
    that removes them (``AVX2`` on an AMX machine) a bfloat16 convolution fails outright.
    """
    if cap in ("ALL", "DEFAULT") or "AMX" in cap:
        return True
    return feature == "BF16" and "BF16" in cap


def _cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def resolve_precision(setting: str) -> str:
    """``train.precision`` as a Keras dtype policy name ("auto" looks at the hardware)."""
    if setting != "auto":
        return setting
    import tensorflow as tf

    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        cc = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        capabilities.append(tuple(cc) if cc else (0, 0))
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") not in ("0", "false", "False")
    amx = onednn and isa_cap_allows(onednn_isa_cap(), "AMX")
    native = native_bfloat16(_cpu_flags(), capabilities, amx)
    return "mixed_bfloat16" if native else "float32"


@contextlib.contextmanager
def distribution_scope(strategy: str) -> Iterator[int]:
    """Build, compile and fit inside this block; it yields the number of replicas.

    ``"mirrored"`` opens a ``tf.distribute.MirroredStrategy`` scope: one replica per local GPU
    (the CPU alone when there is none), gradients all-reduced each step, each batch of
    ``batch_size`` split across the replicas. ``"none"`` leaves Keras' default device.
    """
    if strategy == "none":
        yield 1
        return
    if strategy != "mirrored":
        raise ValueError(
            f"Unknown strategy {strategy!r}: valid ones are {config.STRATEGY_CHOICES}."
        )
    import tensorflow as tf

    mirrored = tf.distribute.MirroredStrategy()
    with mirrored.scope():
        yield int(mirrored.num_replicas_in_sync)


def use_prefetch(setting: str) -> bool:
    """Resolve ``train.prefetch``: "auto" prefetches only when TF sees a GPU."""
    if setting == "auto":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    return setting == "autotune"


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

    from intro_cnn.data.dataset import one_hot

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
    (the live MLflow metrics).
    """
    compile_model(model, cfg, train_cfg.steps_per_execution)
    train_ds, val_ds = input_datasets(data, cfg.batch_size, seed, use_prefetch(train_cfg.prefetch))
    timer = epoch_timer()
    callbacks = [timer] + ([on_epoch(timer)] if on_epoch else [])
    if verbose == "auto":
        # A live bar on a terminal; one line per epoch in logs (DVC, CI).
        verbose = 1 if sys.stdout.isatty() else 0
        if not verbose:
            callbacks.append(epoch_log(timer, cfg.epochs))
    start = time.perf_counter()

    def stop() -> None:  # Keras checks this after every step
        model.stop_training = True

    # BatchNormalization trains with TF's fused kernel; the model stays standard Keras.
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
    rows = [
        {
            "epoch": i + 1,
            "accuracy": float(hist.history["accuracy"][i]),
            "loss": float(hist.history["loss"][i]),
            "val_accuracy": float(hist.history["val_accuracy"][i]),
            "val_loss": float(hist.history["val_loss"][i]),
            "seconds": round(timer.seconds[i], 3),
        }
        for i in range(len(hist.history["loss"]))
    ]
    n_train = len(data["x_train"])
    return TrainResult(
        history=rows,
        wall_seconds=wall,
        samples_per_second=n_train * len(rows) / wall,
        n_train=n_train,
        n_val=len(data["x_val"]),
    )


def run(name: str, params: config.Params, verbose: int | str = "auto") -> dict[str, Any]:
    """Train ``name`` from the processed data and write every output of the stage.

    The training is a child run of this pipeline execution's parent run; per-epoch metrics
    appear in MLflow as epochs end; an error, Ctrl-C or SIGTERM ends both runs FAILED/KILLED.
    """
    import mlflow

    from intro_cnn.data.dataset import load_processed
    from intro_cnn.models import build_model

    model_cfg = params.model(name)
    seed = params.seed_for(name)
    start_ms = int(time.time() * 1000)
    configure_tensorflow(seed, params.train.deterministic)
    data = load_processed()
    precision = resolve_precision(params.train.precision)
    # Build, compile and fit in one strategy scope (one replica without "mirrored").
    with distribution_scope(params.train.strategy) as replicas:
        model = build_model(name, precision)
        log.info(
            "training %s (%d parameters), seed %d, %s, strategy %s (%d replica(s))",
            name,
            model.count_params(),
            seed,
            precision,
            params.train.strategy,
            replicas,
        )
        logged_params = {
            "model": name,
            **asdict(model_cfg),
            "seed": seed,
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
        uri = mlflow_store.tracking_uri()
        tracking.quiet_mlflow()
        dataset = tracking.dataset(
            data["x_train"], data["y_train"], TRAINING_DATASET, config.PROCESSED_MNIST
        )
        with mlflow_store.store_lock(uri):  # the first use of a new store migrates its schema
            client = mlflow.MlflowClient(uri)
            mlflow.set_tracking_uri(uri)
            execution = tracking.open_execution(client, uri, params.train.experiment)
            run_id = start_training_run(client, execution, name, logged_params, dataset, start_ms)
        with tracking.ends_honestly(client, uri, [run_id, execution.parent_run_id]):
            result = fit(
                model,
                data,
                model_cfg,
                params.train,
                seed,
                verbose,
                on_epoch=lambda timer: live_metrics(client, uri, run_id, timer),
            )
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
            with mlflow_store.store_lock(uri):
                record = finish_training_run(
                    client,
                    execution,
                    run_id,
                    name,
                    model,
                    result,
                    summary | timing,
                    data["x_val"][:5],
                )
                tracking.end_stage(client, execution)
            with cli.committing():
                save_model(model, config.model_path(name))
                files.write_text(config.history_path(name), history_csv(result.history))
                files.write_json(config.train_metrics_path(name), summary)
                files.write_json(config.train_timing_path(name), timing)
                files.write_json(
                    config.run_info_path(name),
                    {
                        **record,
                        "experiment": params.train.experiment,
                        "dvc_exp_name": execution.tags.get(tracking.DVC_EXP_TAG, ""),
                        "model": name,
                        "precision": precision,
                    },
                )
        log.info(
            "MLflow run %s (parent %s), registered %s version %s",
            run_id,
            execution.parent_run_id,
            record["registered_model"],
            record["model_version"],
        )
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train one model of the registry.")
    parser.add_argument("model", help="a key of the `models` section of params.yaml")
    args = parser.parse_args(argv)
    # TensorFlow's C++ start-up chatter (oneDNN, CPU features) drowns the per-epoch lines.
    with cli.stage(f"train {args.model}"):
        params = config.load_params()
        if args.model not in params.models:
            raise config.ConfigError(
                f"{config.PARAMS_FILE}: no model {args.model!r} in `models`; "
                f"valid names: {', '.join(params.models)}."
            )
        if not config.PROCESSED_MNIST.exists():
            raise errors.StageError(
                f"{config.PROCESSED_MNIST} is missing: run `dvc repro preprocess` first."
            )
        # Checked before TensorFlow loads: a broken store must not cost a whole training.
        mlflow_store.probe_store(mlflow_store.tracking_uri())
        run(args.model, params)
