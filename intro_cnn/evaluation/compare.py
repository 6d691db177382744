"""The work of stage ``compare`` (``stages/compare.py``): put every model's evaluation side by
side and check the notebook's claims.

It reads the folders the per-model stages wrote (``reports/train/<model>/`` and
``reports/evaluate/<model>/``, for each model of params ``models``) and writes, across models:
the DVC metrics file ``reports/compare/metrics.json`` (``cnn.test.accuracy``, ...; what the gate
reads), ``runs.json``, ``timing.json`` and ``inputs.json`` beside it (each model's entry gathered),
``claims.json`` (the verdicts on the notebook's two claims), ``history.csv`` (every model's
training curves in one table: ``dvc plots show`` overlays them), and ``reports/comparison.md`` and
``.csv`` (one row per model). The comparison and the claims are also logged to this pipeline
execution's MLflow parent run, under ``evaluate/``.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from intro_cnn import config, tracking
from intro_cnn.config import Params
from intro_cnn.evaluation import across_seeds, claim_checks, fingerprint
from intro_cnn.evaluation.claims import Claim
from intro_cnn.evaluation.errors import CompareError, reported_as
from intro_cnn.replicates.outputs import SeedResult, read_replicate
from intro_cnn.runtime import cli, files
from intro_cnn.runtime.files import read_json, require, write_json
from intro_cnn.tracking import mlflow_store
from intro_cnn.training.train_outputs import read_history

log = logging.getLogger(__name__)

# The comparison files also logged to the MLflow parent run, and where.
MLFLOW_DIR = "evaluate"


# --------------------------------------------------------------------------------------
# Pure core: the comparison table, the claims and the aggregated files
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


_CSV_COLUMNS = [f.name for f in fields(ComparisonRow)]


def comparison_csv(rows: Sequence[ComparisonRow]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=_CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(asdict(row))
    return buf.getvalue()


def comparison_markdown(
    rows: Sequence[ComparisonRow],
    judged: Sequence[Claim],
    spread: Mapping[str, Mapping[str, Any]],
) -> str:
    """The comparison table of the designated models, each model across its seeds, then each
    claim with its verdict and the numbers behind it."""
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
    lines += ["", *across_seeds.seeds_markdown(spread), "## The notebook's claims, checked", ""]
    for i, c in enumerate(judged, 1):
        lines += [f"{i}. **{c.statement}**", "", f"   Verdict: **{c.verdict}**. {c.reason}", ""]
    return "\n".join(lines)


def claims_json(judged: Sequence[Claim]) -> list[dict[str, Any]]:
    return [asdict(c) for c in judged]


def history_table(histories: Mapping[str, Sequence[Mapping[str, str]]]) -> str:
    """Every model's training history in one CSV, a ``model`` column first (``dvc plots``
    colours the curves by it). Each history keeps its own columns; all must have the same."""
    columns = next((list(rows[0]) for rows in histories.values() if rows), [])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["model", *columns], lineterminator="\n")
    writer.writeheader()
    for model, rows in histories.items():
        if rows and list(rows[0]) != columns:
            raise CompareError(
                f"{config.history_path(model)} has columns {list(rows[0])}, other models "
                f"{columns}: retrain the models with the same code (`dvc repro`)."
            )
        writer.writerows({"model": model, **row} for row in rows)
    return buf.getvalue()


def metrics_json(entries: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The DVC metrics file, nested by model: ``dvc metrics show`` lists ``cnn.test.accuracy``."""
    return {name: dict(entry) for name, entry in entries.items()}


def write_metrics(path: str | os.PathLike[str], entries: Mapping[str, Mapping[str, Any]]) -> None:
    """Write the DVC metrics file (:func:`metrics_json`)."""
    write_json(path, metrics_json(entries))


# --------------------------------------------------------------------------------------
# Edge: reading what the per-model stages left, MLflow, writing
# --------------------------------------------------------------------------------------
def read_train_summary(path: Path, timing_path: Path) -> dict[str, float]:
    """Epochs and validation accuracy from a train ``metrics.json``, wall time and throughput
    from its ``timing.json``."""
    with reported_as(CompareError):
        data, timing = read_json(path), read_json(timing_path)
    try:
        return {
            "epochs": int(data["epochs"]),
            "wall_seconds": float(timing["wall_seconds"]),
            "samples_per_second": float(timing["samples_per_second"]),
            "val_accuracy": float(data["val"]["accuracy"]),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise CompareError(
            f"{path} / {timing_path.name}: missing or bad key {exc}; they need epochs and "
            "val.accuracy, wall_seconds and samples_per_second. Rerun the train stage."
        ) from None


def read_evaluation(name: str) -> dict[str, Any]:
    """One model's evaluate outputs: test metrics, parameter count, throughput, runs, inputs."""
    folder = config.eval_dir(name)
    stage = f"evaluate@{name}"
    with reported_as(CompareError):
        got = {
            key: read_json(require(folder / file, f"dvc repro {stage}"))
            for key, file in (
                ("metrics", config.EVAL_METRICS),
                ("timing", config.EVAL_TIMING),
                ("run", config.EVAL_RUN),
                ("inputs", config.EVAL_INPUTS),
            )
        }
    try:
        got["test"] = dict(got["metrics"]["test"])
        got["params"] = int(got["metrics"]["params"])
        got["images_per_s"] = float(got["timing"]["inference_images_per_s"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CompareError(
            f"{folder}: missing or bad key {exc} in {config.EVAL_METRICS} or "
            f"{config.EVAL_TIMING}; rerun `dvc repro {stage}`."
        ) from None
    return got


def log_comparison(
    uri: str,
    experiment: str,
    paths: Sequence[Path],
    numbers: Mapping[str, float],
    models: Sequence[str],
) -> str:
    """Log the comparison files and the across-seed ``numbers`` into this execution's parent
    run, and save the runs table's view of ``models`` (:mod:`intro_cnn.tracking.views`);
    return the parent's id."""
    import mlflow
    from mlflow.entities import Metric
    from mlflow.exceptions import MlflowException

    tracking.quiet_mlflow()
    try:
        with reported_as(CompareError), mlflow_store.store_lock(uri):
            client = mlflow.MlflowClient(uri)
            execution = tracking.open_execution(client, uri, experiment)
            tracking.save_runs_view(client, execution.experiment_id, models)
            for path in paths:
                client.log_artifact(execution.parent_run_id, str(path), artifact_path=MLFLOW_DIR)
            now = tracking.now_ms()
            client.log_batch(
                execution.parent_run_id,
                metrics=[Metric(k, float(v), now, 0) for k, v in numbers.items()],
            )
            tracking.end_stage(client, execution)
    except MlflowException as exc:
        raise CompareError(
            f"Could not log the comparison to MLflow ({uri}): {exc.message}"
        ) from exc
    return execution.parent_run_id


def run_stage(params: Params, uri: str) -> None:
    """Gather every model's evaluation, judge the claims, log to MLflow, then write it all."""
    names = list(params.models)
    histories = {}
    rows = []
    evaluated = {}
    for name in names:
        with reported_as(CompareError):
            histories[name] = read_history(name)
        train = read_train_summary(
            require(config.train_metrics_path(name), f"dvc repro train@{name}"),
            require(config.train_timing_path(name), f"dvc repro train@{name}"),
        )
        ev = evaluated[name] = read_evaluation(name)
        rows.append(
            ComparisonRow(
                model=name,
                params=ev["params"],
                epochs=int(train["epochs"]),
                train_seconds=train["wall_seconds"],
                train_samples_per_s=train["samples_per_second"],
                val_accuracy=train["val_accuracy"],
                test_accuracy=float(ev["test"]["accuracy"]),
                test_loss=float(ev["test"]["loss"]),
                inference_images_per_s=ev["images_per_s"],
            )
        )
    designated = {
        r.model: SeedResult(
            r.model,
            params.seed_for(r.model),
            r.test_accuracy,
            r.val_accuracy,
            tuple(float(e["val_accuracy"]) for e in histories[r.model]),
        )
        for r in rows
    }
    with reported_as(CompareError):
        runs = across_seeds.gather(params, designated, read_replicate)
    spread = across_seeds.aggregates(runs)
    judged = claim_checks.judge_claims(runs, {r.model: r.params for r in rows})
    for c in judged:
        log.info("Claim %s: %s", c.id, c.verdict)
    outputs = files.Outputs()
    outputs.add_text(config.COMPARISON_CSV, comparison_csv(rows))
    outputs.add_text(config.COMPARISON_MD, comparison_markdown(rows, judged, spread))
    outputs.add_json(config.COMPARE_CLAIMS, claims_json(judged))
    outputs.add_text(config.COMPARE_HISTORY, history_table(histories))
    outputs.add_json(
        config.COMPARE_METRICS,
        metrics_json({n: {"test": e["test"], "seeds": spread[n]} for n, e in evaluated.items()}),
    )
    outputs.add_json(config.COMPARE_ACCURACY, across_seeds.headline(spread))
    outputs.add_json(config.COMPARE_TIMING, {n: e["timing"] for n, e in evaluated.items()})
    outputs.add_json(config.COMPARE_RUNS, {n: e["run"] for n, e in evaluated.items()})
    outputs.add_json(
        config.COMPARE_INPUTS, fingerprint.merge([e["inputs"] for e in evaluated.values()])
    )
    with (
        reported_as(CompareError),
        tempfile.TemporaryDirectory(prefix="intro-cnn-compare-") as tmp,
    ):
        outputs.copy_to(Path(tmp))
        shared = (config.COMPARISON_MD, config.COMPARE_CLAIMS)
        log_comparison(
            uri,
            params.train.experiment,
            [Path(tmp) / p for p in shared],
            across_seeds.parent_metrics(spread),
            names,
        )
    with reported_as(CompareError), cli.committing():
        outputs.commit()
    log.info("%d models compared -> %s, %s", len(rows), config.COMPARISON_MD, config.COMPARE_DIR)
