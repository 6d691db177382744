"""What the ``visualize`` stage does: the notebook's network figures, and those it only promises.

Per model: the training curves (the notebook's ``plot_history``: accuracy solid on the left
axis, loss dashed on a twin axis), the test confusion matrix and a gallery of the test digits
the model got wrong most confidently. For ``cnn``: its accuracy curves zoomed to 0.9-1. For
``cnn_small`` (as the notebook): its learned 3×3 filters and the feature maps of its two
convolutions on the first training images. Across models: ``cnn_small`` vs ``cnn_small_bn``
accuracy per epoch (the comparison the notebook announces at its end), and test accuracy
against parameter count.

Inputs: the trained models and their train/evaluate outputs, ``data/processed/mnist.npz``, and
the ``report`` and ``models`` params. Outputs: ``reports/figures/network/*.png`` and
``index.json`` (which figure shows what, read by the report stage). The figures are also
logged to this pipeline execution's parent MLflow run, under ``figures/`` (not to the training
runs: a figure depends on several models and on the ``report`` params).

This module reads the inputs (and computes the filters and feature maps from the saved model),
renders the figures (:func:`render_figures`), writes and logs them; the drawing is in
:mod:`intro_cnn.reporting.network_figures`, the stage's order in ``stages/visualize.py``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from intro_cnn import config, tracking
from intro_cnn.data import dataset
from intro_cnn.reporting import plotting, report_inputs
from intro_cnn.reporting.errors import VisualizeError, raising
from intro_cnn.reporting.network_figures import (
    FILTER_MODEL,
    ConvDetails,
    FigureEntry,
    ModelResults,
    index_json,
    make_figures,
)
from intro_cnn.runtime import files, tf_import
from intro_cnn.tracking import mlflow_store
from intro_cnn.training import train_outputs

if TYPE_CHECKING:
    import keras

# Artifact folder of the figures inside each MLflow run.
MLFLOW_DIR = "figures"
EVALUATE_LINK = "evaluate"  # the parent-run tag naming the evaluation the figures read


# --------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------
def feature_maps(model: keras.Model, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outputs of the model's first two Conv2D layers (after their activation) on ``images``.

    A sub-model from the model's input to both convolutions' outputs computes them in one pass
    (Keras 3's replacement for the notebook's ``K.function``).
    """
    import keras

    from intro_cnn.models import conv_layers

    convs = conv_layers(model)
    if len(convs) < 2:
        raise VisualizeError(
            f"Model {model.name!r} has {len(convs)} Conv2D layer(s); feature maps need two."
        )
    sub = keras.Model(model.inputs, [convs[0].output, convs[1].output])
    maps1, maps2 = sub.predict(np.asarray(images, dtype=np.float32), verbose=0)
    # float32 also for a mixed_bfloat16 model, whose layers output bfloat16.
    return np.asarray(maps1, dtype=np.float32), np.asarray(maps2, dtype=np.float32)


def conv_kernels(model: keras.Model) -> list[np.ndarray]:
    """The kernel ``(kh, kw, in, out)`` of each Conv2D layer, in order."""
    import keras

    from intro_cnn.models import conv_layers

    return [
        np.asarray(keras.ops.convert_to_numpy(layer.kernel), dtype=np.float32)
        for layer in conv_layers(model)
    ]


# --------------------------------------------------------------------------------------
# Edge: reading inputs
# --------------------------------------------------------------------------------------
def history_arrays(name: str) -> dict[str, np.ndarray]:
    """Model ``name``'s per-epoch history as one float array per column, epoch 1 first."""
    rows = train_outputs.read_history(name)
    return {k: np.array([float(r[k]) for r in rows]) for k in train_outputs.HISTORY_COLUMNS}


def read_model_results(
    name: str, eval_metrics: Mapping[str, Any], x_test: np.ndarray
) -> ModelResults:
    """One model's history, train parameter count, and evaluate outputs."""
    train_fix = f"dvc repro train@{name}"
    history = history_arrays(name)
    train_metrics = files.read_json(files.require(config.train_metrics_path(name), train_fix))
    eval_dir = config.eval_dir(name)
    confusion = np.asarray(
        files.read_json(files.require(eval_dir / config.CONFUSION, "dvc repro evaluate"))
    )
    wrong = files.read_json(files.require(eval_dir / config.WRONG, "dvc repro evaluate"))
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise VisualizeError(
            f"{eval_dir / config.CONFUSION}: expected a square matrix, got shape "
            f"{confusion.shape}; rerun `dvc repro evaluate`."
        )
    if name not in eval_metrics:
        raise VisualizeError(
            f"{config.COMPARE_METRICS} has no entry for {name!r}: rerun `dvc repro compare`."
        )
    indices = [int(w["index"]) for w in wrong]
    bad = [i for i in indices if not 0 <= i < len(x_test)]
    if bad:
        raise VisualizeError(
            f"{eval_dir / config.WRONG}: test indices {bad[:5]} outside the {len(x_test)} test "
            "images: rerun `dvc repro evaluate` on the current data."
        )
    try:
        test_accuracy = float(eval_metrics[name]["test"]["accuracy"])
        n_params = int(train_metrics["params"])
        spread = eval_metrics[name].get("seeds", {}).get("test_accuracy", {})
        per_seed = {int(k): float(v) for k, v in spread.get("per_seed", {}).items()}
        interval = (float(spread["low"]), float(spread["high"])) if len(per_seed) > 1 else None
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise VisualizeError(
            f"Model {name!r}: missing test accuracy, parameter count or seeds ({exc}); rerun "
            f"`dvc repro {train_fix.split()[-1]} evaluate`."
        ) from None
    return ModelResults(
        history=history,
        confusion=confusion,
        wrong=wrong,
        wrong_images=x_test[indices, :, :, 0] if indices else np.zeros((0, 28, 28)),
        test_accuracy=test_accuracy,
        params=n_params,
        seed_accuracies=per_seed,
        interval=interval,
    )


def load_processed(n_images: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first ``n_images`` training images and labels, and every test image."""
    data = dataset.load_processed(("x_train", "y_train", "x_test"), config.PROCESSED_MNIST)
    return data["x_train"][:n_images], data["y_train"][:n_images], data["x_test"]


def conv_details(name: str, images: np.ndarray, labels: np.ndarray) -> ConvDetails:
    """Load the saved filter model; its kernels and feature maps on ``images``."""
    with tf_import.importing_tensorflow():
        import keras

    path = files.require(config.model_path(name), f"dvc repro train@{name}")
    model = keras.saving.load_model(path, compile=False)
    maps1, maps2 = feature_maps(model, images)
    return ConvDetails(conv_kernels(model), images, labels, maps1, maps2)


def upstream_runs(names: Sequence[str]) -> dict[str, str]:
    """The MLflow runs the figures are drawn from: each model's training run (``run.json``)
    and the evaluation's parent run (``runs.json``), keyed by model name and "evaluate"."""
    out = {}
    for name in names:
        if config.run_info_path(name).exists():
            run_id = files.read_json(config.run_info_path(name)).get("run_id")
            if run_id:
                out[name] = str(run_id)
    evaluated = files.read_json(config.COMPARE_RUNS) if config.COMPARE_RUNS.exists() else {}
    parents = {str(r.get("parent_run_id")) for r in evaluated.values() if r.get("parent_run_id")}
    if len(parents) == 1:
        out[EVALUATE_LINK] = parents.pop()
    return out


# --------------------------------------------------------------------------------------
# The figures, rendered
# --------------------------------------------------------------------------------------
def render_figures(
    names: Sequence[str], lang: str, n_images: int, dpi: int
) -> tuple[list[FigureEntry], dict[str, bytes]]:
    """Every figure of the models ``names`` as PNG bytes at ``dpi``, and ``index.json``: the
    folder's contents, keyed by file name, all rendered before anything is written. A file that
    cannot be read or parsed is a :class:`VisualizeError` with the reader's message."""
    with raising(VisualizeError):
        eval_metrics = report_inputs.read_compare_metrics()
        images, labels, x_test = load_processed(n_images)
        results = {name: read_model_results(name, eval_metrics, x_test) for name in names}
        del x_test
        conv = conv_details(FILTER_MODEL, images, labels) if FILTER_MODEL in names else None
        figures = make_figures(results, conv, lang)
        contents = {entry.file: plotting.figure_png_bytes(fig, dpi) for entry, fig in figures}
    entries = [entry for entry, _ in figures]
    index = json.dumps(index_json(entries, lang), indent=2, ensure_ascii=False) + "\n"
    contents[config.FIGURES_INDEX] = index.encode("utf-8")
    return entries, contents


# --------------------------------------------------------------------------------------
# Edge: writing outputs
# --------------------------------------------------------------------------------------
def write_outputs_into(folder: Path, contents: Mapping[str, bytes]) -> None:
    for name, data in contents.items():
        (folder / name).write_bytes(data)


def write_outputs(target: Path, contents: Mapping[str, bytes]) -> None:
    """Replace the figures folder whole: no stale figures of a model no longer listed."""
    with files.atomic_dir(target) as tmp:
        write_outputs_into(tmp, contents)


def log_figures(
    uri: str, experiment: str, upstream: Mapping[str, str], paths: Sequence[Path]
) -> str:
    """Log the figures into this pipeline execution's parent run under ``figures/`` (never
    into the training runs: figures depend on every model and on ``report``); tag the parent
    with the upstream runs of earlier executions it drew from. Return the parent run id."""
    import mlflow
    from mlflow.exceptions import MlflowException

    tracking.quiet_mlflow()
    try:
        with mlflow_store.store_lock(uri):
            client = mlflow.MlflowClient(uri)
            execution = tracking.open_execution(client, uri, experiment)
            for name, run_id in upstream.items():
                tracking.link_reused_run(client, execution, name, run_id)
            for path in paths:
                client.log_artifact(execution.parent_run_id, str(path), artifact_path=MLFLOW_DIR)
            tracking.end_stage(client, execution)
    except MlflowException as exc:
        raise VisualizeError(f"Could not log the figures to MLflow ({uri}): {exc.message}") from exc
    return execution.parent_run_id
