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
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stages import cli, config, files, mlflow_store, serving, tracking
from stages.config import ModelConfig, TrainConfig
from stages.models import fused_batch_norm

log = logging.getLogger(__name__)

# history.csv holds what an identical rerun reproduces exactly; wall-clock numbers (seconds per
# epoch, throughput) go to timing.json, which DVC tracks but does not treat as metrics.
HISTORY_COLUMNS = ("epoch", "accuracy", "loss", "val_accuracy", "val_loss")


@dataclass(frozen=True)
class TrainResult:
    history: list[dict[str, float]]  # one row per epoch: HISTORY_COLUMNS and "seconds"
    wall_seconds: float  # the whole fit, first-epoch graph tracing included
    samples_per_second: float  # training samples processed per wall second
    n_train: int
    n_val: int


def configure_tensorflow(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and TF, and optionally require deterministic TF ops."""
    with cli.tensorflow_notices_dropped():
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
    native = native_bfloat16(_cpu_flags(), capabilities, onednn)
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

    from stages.preprocess import one_hot

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


def history_csv(rows: list[dict[str, float]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(
        buf, fieldnames=HISTORY_COLUMNS, lineterminator="\n", extrasaction="ignore"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{row[k]:.6g}" if k != "epoch" else row[k]) for k in HISTORY_COLUMNS})
    return buf.getvalue()


def metrics_summary(result: TrainResult, n_params: int) -> dict[str, Any]:
    """The DVC metrics of one training: only numbers an identical rerun reproduces exactly."""
    last = result.history[-1]
    return {
        "train": {"accuracy": round(last["accuracy"], 6), "loss": round(last["loss"], 6)},
        "val": {"accuracy": round(last["val_accuracy"], 6), "loss": round(last["val_loss"], 6)},
        "epochs": len(result.history),
        "params": int(n_params),
        "n_train": result.n_train,
    }


def timing_summary(result: TrainResult) -> dict[str, Any]:
    """Wall-clock measurements of one training (timing.json): they differ on every run."""
    return {
        "wall_seconds": round(result.wall_seconds, 2),
        "samples_per_second": round(result.samples_per_second, 1),
        "epoch_seconds": [row["seconds"] for row in result.history],
    }


def model_summary_text(model: Any) -> str:
    lines: list[str] = []
    model.summary(print_fn=lambda line, **_: lines.append(line), line_length=100)
    return "\n".join(lines) + "\n"


def _without_save_date(metadata: bytes) -> bytes:
    """Keras' metadata.json without ``date_saved`` (written on save, never read on load)."""
    meta = json.loads(metadata)
    meta.pop("date_saved", None)
    return json.dumps(meta, sort_keys=True).encode()


def _numbered_shared_objects(config_json: bytes) -> bytes:
    """Keras' config.json with each ``shared_object_id`` (a Python ``id()``, so a memory
    address that differs per process) replaced by its rank of first appearance: the same
    objects stay shared on load, and the same model gives the same text."""
    ranks: dict[Any, int] = {}

    def renumber(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: renumber(v) for k, v in node.items()}
            if "shared_object_id" in node:
                out["shared_object_id"] = ranks.setdefault(node["shared_object_id"], len(ranks))
            return out
        if isinstance(node, list):
            return [renumber(v) for v in node]
        return node

    return json.dumps(renumber(json.loads(config_json))).encode()


def save_model(model: Any, target: Path) -> None:
    """Save ``model`` as ``.keras`` so that the same weights give the same bytes.

    Keras stamps the archive with the save date (in ``metadata.json`` and on the weights
    member) and writes Python object ids into ``config.json``; all three are made
    deterministic here, so an identical retraining leaves the file, and DVC's view of every
    stage downstream of it, unchanged. The HDF5 weights file itself is stable (h5py records no
    object times by default); tests/test_train.py compares whole files across processes.
    """
    with files.atomic_path(target, suffix=".keras") as tmp:  # Keras insists on the suffix
        model.save(tmp)
        files.restamp_zip(
            tmp,
            {"metadata.json": _without_save_date, "config.json": _numbered_shared_objects},
        )


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
) -> str:
    """Create the child run of one training under the execution's parent; return its id.

    Params and the dataset input are logged up front, so the run is useful while it trains.
    """
    import mlflow
    from mlflow.entities import DatasetInput, InputTag, Param

    tags = tracking.child_run_tags(execution, name)
    tags["data_sha256"] = files.file_sha256(config.PROCESSED_MNIST)
    tags |= library_versions()
    run = client.create_run(
        execution.experiment_id, start_time=start_time_ms, tags=tags, run_name=name
    )
    run_id = run.info.run_id
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
    context = InputTag(key=mlflow.utils.mlflow_tags.MLFLOW_DATASET_CONTEXT, value="training")
    client.log_inputs(run_id, [DatasetInput(dataset._to_mlflow_entity(), tags=[context])])
    return run_id


def log_trained_model(model: Any, name: str, input_example: np.ndarray) -> Any:
    """Log ``model`` into the active MLflow run as the LoggedModel ``name`` and register it as
    a new version of ``intro-cnn-<name>``; return MLflow's ModelInfo.

    The one place that decides what is logged, registered and served: the model wrapped with
    its input checks (:mod:`stages.serving`: raw 0-255 images or the normalised tensor).
    """
    return serving.log_model(
        model,
        name=name,
        registered_model_name=tracking.registered_model_name(name),
        input_example=serving.raw_images(input_example),
    )


def finish_training_run(
    client: Any,
    execution: tracking.Execution,
    run_id: str,
    name: str,
    model: Any,
    result: TrainResult,
    summary: Mapping[str, Any],
    input_example: np.ndarray,
) -> dict[str, Any]:
    """Log the run's summary, files and registered model; end it FINISHED. Returns what
    ``run.json`` records about it (ids of the run, parent, logged model and model version)."""
    import mlflow
    from mlflow.entities import Metric

    now = tracking.now_ms()
    keys = ("wall_seconds", "samples_per_second", "params")
    metrics = [Metric(k, float(summary[k]), now, 0) for k in keys]
    client.log_batch(run_id, metrics=metrics)
    client.log_text(run_id, model_summary_text(model), "model_summary.txt")
    client.log_text(run_id, history_csv(result.history), "history.csv")
    with mlflow.start_run(run_id=run_id):
        info = log_trained_model(model, name, input_example)
    client.set_terminated(run_id, "FINISHED")
    return {
        "run_id": run_id,
        "parent_run_id": execution.parent_run_id,
        "model_id": info.model_id,
        "registered_model": tracking.registered_model_name(name),
        "model_version": str(info.registered_model_version),
    }


def run(name: str, params: config.Params, verbose: int | str = "auto") -> dict[str, Any]:
    """Train ``name`` from the processed data and write every output of the stage.

    The training is a child run of this pipeline execution's parent run; per-epoch metrics
    appear in MLflow as epochs end; an error, Ctrl-C or SIGTERM ends both runs FAILED/KILLED.
    """
    import mlflow

    from stages.models import build_model
    from stages.preprocess import load_processed

    model_cfg = params.model(name)
    seed = params.seed_for(name)
    start_ms = int(time.time() * 1000)
    configure_tensorflow(seed, params.train.deterministic)
    data = load_processed(str(config.PROCESSED_MNIST))
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
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with cli.stage(f"train {args.model}"):
        params = config.load_params()
        if args.model not in params.models:
            raise config.ConfigError(
                f"{config.PARAMS_FILE}: no model {args.model!r} in `models`; "
                f"valid names: {', '.join(params.models)}."
            )
        if not config.PROCESSED_MNIST.exists():
            raise cli.StageError(
                f"{config.PROCESSED_MNIST} is missing: run `dvc repro preprocess` first."
            )
        # Checked before TensorFlow loads: a broken store must not cost a whole training.
        mlflow_store.probe_store(mlflow_store.tracking_uri())
        run(args.model, params)


if __name__ == "__main__":
    main()
