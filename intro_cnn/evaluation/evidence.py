"""What the gate accepts as proof: metrics measured again from the model files, and logged
models that are those files.

Every file under ``reports/`` can be edited by hand, ``inputs.json`` included, so none of them
is proof that a pipeline run produced the numbers. The gate therefore measures each gated
model again on the processed test split (:func:`measure`) and refuses metrics that disagree
with it (:func:`disagreements`), and registers and crowns only a logged model whose
recorded model-file digest (:data:`intro_cnn.tracking.MODEL_FILE_TAG`, set by the train stage on
its logged model) is that of ``models/<name>.keras`` (:func:`logged_model_problems`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from intro_cnn import config
from intro_cnn.evaluation import metrics
from intro_cnn.evaluation.errors import EvaluationError
from intro_cnn.runtime import files, tf_import

log = logging.getLogger(__name__)

# On the machine that evaluated them the numbers are reproduced exactly. Another CPU's
# arithmetic can move a borderline image across the decision boundary, so a metric measured
# on a teammate's machine may differ by one test image: 1.5 images is the accepted difference.
TOLERANCE_IMAGES = 1.5


@dataclass(frozen=True)
class Measured:
    """Each model's ``metrics.json`` entry as measured now, and the test split's size."""

    metrics: dict[str, Any]
    n_test: int

    @property
    def tolerance(self) -> float:
        return TOLERANCE_IMAGES / max(self.n_test, 1)


def _value(entry: Any, metric: str) -> float | None:
    for part in metric.split("."):
        if not isinstance(entry, Mapping) or part not in entry:
            return None
        entry = entry[part]
    if isinstance(entry, bool) or not isinstance(entry, int | float):
        return None
    return float(entry)


def _seed_lines(recorded: Mapping[str, Any], measured: Measured, model: str) -> list[str]:
    """Why ``model``'s recorded per-seed test accuracies are not what its files measure: a seed
    set other than the one params asks for, or a value beyond the tolerance."""
    if SEEDS not in measured.metrics[model]:
        return []
    now = measured.metrics[model][SEEDS][SEED_METRIC][PER_SEED]
    node: Any = recorded.get(model)
    for part in (SEEDS, SEED_METRIC, PER_SEED):
        node = node.get(part) if isinstance(node, Mapping) else None
    said = node if isinstance(node, Mapping) else {}
    if sorted(map(str, said)) != sorted(now):
        return [
            f"{model}: {config.COMPARE_METRICS} has seeds {', '.join(map(str, said)) or 'none'}, "
            f"params.yaml trains it with seeds {', '.join(now)}"
        ]
    lines = []
    for seed, value in now.items():
        if not isinstance(said[seed], int | float) or abs(said[seed] - value) > measured.tolerance:
            lines.append(
                f"{model} seed {seed}: {config.COMPARE_METRICS} says {said[seed]}, its model "
                f"file measures {value:.4f} on the {measured.n_test} test images"
            )
    return lines


def disagreements(
    recorded: Mapping[str, Any],
    measured: Measured,
    checked: Iterable[tuple[str, str]],
) -> list[str]:
    """One line per gated ``(model, metric)`` whose recorded value is not what the model
    measures (beyond :attr:`Measured.tolerance`), and per gated model whose recorded seeds are
    not what its replicates measure; a metric the measurement lacks is skipped, since the
    gate's own checks report it missing."""
    lines = []
    for model in dict.fromkeys(m for m, _ in checked):
        if model in measured.metrics and model in recorded:
            lines += _seed_lines(recorded, measured, model)
    for model, metric in dict.fromkeys(checked):
        now = _value(measured.metrics.get(model), metric)
        if now is None:
            continue
        said = _value(recorded.get(model), metric)
        if said is None or abs(said - now) > measured.tolerance:
            shown = "nothing" if said is None else f"{said:.4f}"
            lines.append(
                f"{model}.{metric}: {config.COMPARE_METRICS} says {shown}, "
                f"{config.model_path(model)} measures {now:.4f} "
                f"on the {measured.n_test} test images"
            )
    return lines


SEEDS, SEED_METRIC, PER_SEED = "seeds", "test_accuracy", "per_seed"


def measure(
    models: Iterable[str], batch_size: int, seeds: Mapping[str, Sequence[int]] | None = None
) -> Measured:
    """Evaluate each model file again on the processed test split, as the evaluate stage does
    (no files written, nothing logged). ``seeds[name]``, when given, lists the seeds ``name``
    is trained with, its designated seed first: each replicate's file is measured too, and the
    entry's ``seeds.test_accuracy.per_seed`` holds every seed's test accuracy."""
    from intro_cnn.evaluation import evaluate

    x, y = evaluate.load_test_split()
    with tf_import.importing_tensorflow():
        import keras

    def scores(path: Any, stage: str) -> tuple[dict[str, Any], int]:
        if not path.exists():
            raise EvaluationError(f"{path} not found: run `dvc repro {stage}`.")
        model = keras.saving.load_model(path, compile=False)
        found = metrics.classification_metrics(y, metrics.predict_proba(model, x, batch_size))
        return metrics.metrics_entry(found), int(model.count_params())

    entries = {}
    for name in models:
        entry, n_params = scores(config.model_path(name), f"train@{name}")
        entries[name] = entry | {"params": n_params}
        designated, *others = (seeds or {}).get(name) or (None,)
        per_seed = {str(designated): entry["test"]["accuracy"]}
        for seed in others:
            path = config.replicate_model_path(name, seed)
            replicate, _ = scores(path, f"replicate@{config.replicate_name(name, seed)}")
            per_seed[str(seed)] = replicate["test"]["accuracy"]
        if designated is not None:
            entries[name][SEEDS] = {SEED_METRIC: {PER_SEED: per_seed}}
    return Measured(entries, len(y))


def logged_model_problems(client: Any, logged_models: Mapping[str, str]) -> list[str]:
    """Why a logged model is not the model file the gate measured ([] when each is): its
    digest tag is missing, or names other bytes."""
    from mlflow.exceptions import MlflowException

    from intro_cnn import tracking

    problems = []
    for model, model_id in logged_models.items():
        try:
            found = client.get_logged_model(model_id)
        except MlflowException:
            continue  # not in the store, or not readable: tracking.promote says so
        recorded = (found.tags or {}).get(tracking.MODEL_FILE_TAG)
        path = config.model_path(model)
        if recorded is None:
            problems.append(
                f"logged model {model_id} ({model}) records no model-file digest "
                f"(tag {tracking.MODEL_FILE_TAG}): retrain it with `dvc repro -f train@{model}`"
            )
        elif recorded != files.file_sha256(path):
            problems.append(
                f"logged model {model_id} ({model}) was logged from another file than {path} "
                f"(reports/train/{model}/run.json names it): rerun `dvc repro train@{model}`"
            )
    return problems
