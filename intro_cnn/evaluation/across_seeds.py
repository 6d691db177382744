"""Every seed a model was trained with, side by side: its designated model's numbers beside its
replicates', their aggregates (mean, standard deviation, n, 95 % interval, each seed's value)
for the DVC metrics and the MLflow parent run, and the table of them in ``comparison.md``.

Pure: the compare stage reads the files (:func:`gather` takes a reader) and writes the results.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from intro_cnn.config import Params
from intro_cnn.evaluation import seeds
from intro_cnn.replicates.outputs import SeedResult

# How many first epochs of validation accuracy measure "how fast it rises".
EARLY_EPOCHS = 3
# The quantities aggregated per model: (key in metrics.json, how a run gives it).
QUANTITIES: dict[str, Callable[[SeedResult], float]] = {
    "test_accuracy": lambda r: r.test_accuracy,
    "val_accuracy": lambda r: r.val_accuracy,
}
DIGITS = 6  # aggregates are rounded so that dvc metrics show reads them


def gather(
    params: Params,
    designated: Mapping[str, SeedResult],
    read: Callable[[str, int], SeedResult],
) -> dict[str, list[SeedResult]]:
    """Each model's runs: its designated model first, then each replicate params asks for."""
    return {
        name: [designated[name], *(read(name, s) for s in params.replicate_seeds(name))]
        for name in designated
    }


def early_epochs(*groups: Sequence[SeedResult]) -> int:
    """Epochs the early-rise comparison can use: EARLY_EPOCHS, or fewer if a history is short."""
    return min([EARLY_EPOCHS, *(len(r.val_history) for g in groups for r in g)])


def early_value(result: SeedResult, k: int) -> float:
    """Mean validation accuracy over the first ``k`` epochs."""
    return sum(result.val_history[:k]) / k


def by_seed(results: Sequence[SeedResult], value: Callable[[SeedResult], float]):
    return {r.seed: value(r) for r in results}


def aggregate(results: Sequence[SeedResult]) -> dict[str, Any]:
    """One model's ``seeds`` entry of the DVC metrics: n, the seeds and, per quantity, the mean,
    standard deviation, 95 % interval and each seed's value."""
    out: dict[str, Any] = {"n": len(results), "seeds": [r.seed for r in results]}
    for key, value in QUANTITIES.items():
        per_seed = by_seed(results, value)
        summary = seeds.summarise(list(per_seed.values())).as_json()
        out[key] = {k: round(v, DIGITS) for k, v in summary.items() if k != "n"}
        out[key]["per_seed"] = {str(s): v for s, v in per_seed.items()}
    return out


def aggregates(runs: Mapping[str, Sequence[SeedResult]]) -> dict[str, dict[str, Any]]:
    return {name: aggregate(results) for name, results in runs.items()}


def headline(entries: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """The first DVC metrics file: ``accuracy.<model>``, each model's test accuracy as the mean
    over its seeds (its designated seed alone when it has no replicates). The key sorts before
    every model's name, so ``dvc metrics show`` also lists these columns first."""
    return {"accuracy": {name: e["test_accuracy"]["mean"] for name, e in entries.items()}}


def parent_metrics(entries: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """The aggregates as flat metrics of the MLflow parent run, beside the designated model's
    ``<model>/test_accuracy`` that evaluate logs: ``mlp/seeds/test_accuracy/mean``, ``.../n``."""
    flat = {}
    for name, entry in entries.items():
        flat[f"{name}/seeds/n"] = float(entry["n"])
        for key in QUANTITIES:
            for stat in ("mean", "std", "low", "high"):
                flat[f"{name}/seeds/{key}/{stat}"] = float(entry[key][stat])
    return flat


def seeds_markdown(entries: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The "across seeds" table of ``comparison.md``: one row per model."""
    lines = [
        "## Across seeds",
        "",
        "Each model's designated run and its replicates (params.yaml `replicates`); the interval "
        "is the 95 % Student-t interval of the mean (none with one seed).",
        "",
        "| Model | Seeds | n | Test accuracy, mean ± sd | 95 % interval | Each seed |",
        "|---|---|---:|---:|---:|---|",
    ]
    for name, e in entries.items():
        t = e["test_accuracy"]
        each = ", ".join(f"{v:.4f}" for v in t["per_seed"].values())
        interval = f"[{t['low']:.4f}, {t['high']:.4f}]" if e["n"] > 1 else "—"
        lines.append(
            f"| {name} | {', '.join(map(str, e['seeds']))} | {e['n']} "
            f"| {t['mean']:.4f} ± {t['std']:.4f} | {interval} | {each} |"
        )
    return [*lines, ""]
