"""The pipeline's results as the notebook shows them, read with the stages' own readers: each
model's history, evaluation and seeds (those of the visualize stage), the seed spread and the
claims (compare's outputs, as the report reads them), and their sentences from the catalogue.
So the notebook shows the report's numbers and never recomputes them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from intro_cnn import config, i18n
from intro_cnn.evaluation import claims
from intro_cnn.reporting import report_inputs, visualize
from intro_cnn.reporting.network_figures import ModelResults
from intro_cnn.runtime import files


def model_results(names: Sequence[str]) -> dict[str, ModelResults]:
    """Each model's history, confusion, surest mistakes, test accuracy, parameters and seeds,
    as the visualize stage reads them for its figures."""
    metrics = report_inputs.read_compare_metrics()
    _, _, x_test = visualize.load_processed(0)
    return {name: visualize.read_model_results(name, metrics, x_test) for name in names}


def seed_points(
    results: Mapping[str, ModelResults],
) -> dict[str, tuple[Mapping[int, float], tuple[float, float] | None]]:
    """Each model's test accuracy per seed and the interval of their mean, for
    :func:`~intro_cnn.reporting.evaluation_figures.fig_accuracy_by_seed`."""
    return {n: (r.seed_accuracies, r.interval) for n, r in results.items() if r.seed_accuracies}


def size_points(results: Mapping[str, ModelResults]) -> dict[str, tuple[int, float]]:
    """Each model's parameter count and test accuracy, for
    :func:`~intro_cnn.reporting.evaluation_figures.fig_accuracy_vs_params`."""
    return {name: (r.params, r.test_accuracy) for name, r in results.items()}


def seed_spread() -> dict[str, dict[str, Any]]:
    """Each model's ``seeds`` entry of compare's metrics (count, seeds, test accuracy mean, sd
    and 95 % interval), as the report's table reads it."""
    return {n: dict(e.get("seeds") or {}) for n, e in report_inputs.read_compare_metrics().items()}


def seeds_sentence(name: str, entry: Mapping[str, Any], lang: str) -> str:
    """How many seeds ``name`` was trained with, and its test accuracy across them."""
    test = entry.get("test_accuracy") or {}
    n = int(entry.get("n", 0))
    if not n or not test:
        return i18n.text("notebook", "seeds_none", lang, model=name)
    fields = {
        "model": name,
        "n": n,
        "seeds": ", ".join(str(s) for s in entry.get("seeds", ())),
        "mean": float(test["mean"]),
    }
    if n == 1:
        return i18n.text("notebook", "seeds_single", lang, **fields)
    return i18n.text(
        "notebook",
        "seeds_interval",
        lang,
        std=float(test["std"]),
        low=float(test["low"]),
        high=float(test["high"]),
        **fields,
    )


def read_claims() -> list[claims.Claim]:
    """The notebook's claims as compare judged them (``reports/compare/claims.json``)."""
    entries = files.read_json(files.require(config.COMPARE_CLAIMS, "dvc repro compare"))
    return [claims.Claim.from_json(entry) for entry in entries]


def claim_text(claim: claims.Claim, lang: str) -> str:
    """One claim in words: its statement, the numbers behind it, and the verdict."""
    return i18n.text(
        "notebook",
        "claim",
        lang,
        statement=claims.statement(claim.id, lang),
        reason=claims.reason(claim, lang),
        verdict=claims.verdict_sentence(claim, lang),
    )
