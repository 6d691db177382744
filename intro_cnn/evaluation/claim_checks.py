"""The notebook's two claims judged on every seed each model was trained with.

Each "better" part compares the two models seed by seed
(:func:`intro_cnn.evaluation.seeds.difference`: paired over shared seeds, or one run against the
other's replicates, or no interval at all).
It holds when the 95 % interval of the difference is above 0, fails when it is below, and is
:data:`~intro_cnn.evaluation.claims.NOISE` (not distinguishable from seed noise) when it holds 0.
A claim whose models are not all trained is not checked. Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from intro_cnn.evaluation import claims, seeds
from intro_cnn.evaluation.across_seeds import by_seed, early_epochs, early_value
from intro_cnn.evaluation.claims import CLAIM_MODELS, Claim
from intro_cnn.replicates.outputs import SeedResult

STATE = {
    seeds.BETTER: True,
    seeds.WORSE: False,
    seeds.INDISTINGUISHABLE: claims.NOISE,
    seeds.UNCHECKED: None,
}


def _english(claim: Claim) -> Claim:
    """The claim with its English statement and reason, for readers of claims.json."""
    text = claims.reason(claim, "en") + " " + claims.verdict_sentence(claim, "en")
    return replace(claim, statement=claims.statement(claim.id, "en"), reason=text)


def judge_part(
    a: Sequence[SeedResult], b: Sequence[SeedResult], value: Callable[[SeedResult], float]
) -> tuple[claims.PartState, dict[str, Any]]:
    """Whether ``a`` beats ``b`` on ``value`` beyond seed noise, and the numbers behind it."""
    va, vb = by_seed(a, value), by_seed(b, value)
    d = seeds.difference(va, vb)
    if d.rule == seeds.ONE_AGAINST_SAMPLE and len(va) == 1:
        a_value = next(iter(va.values()))
    else:
        a_value = sum(va[s] for s in d.seeds) / d.n
    interval = d.as_json() | {"a": a_value, "b": a_value - d.mean}
    return STATE[seeds.direction(d)], interval


def _claim_cnn_vs_mlp(runs: Mapping[str, Sequence[SeedResult]], n_params: Mapping[str, int]):
    cid = "cnn_vs_mlp"
    better, other = CLAIM_MODELS[cid]
    state, interval = judge_part(runs[better], runs[other], lambda r: r.test_accuracy)
    ratio = n_params[better] / n_params[other] if n_params[other] else float("inf")
    parts = {"better test accuracy": state, "far fewer parameters": ratio < 0.5}
    evidence = {
        f"{better}_params": n_params[better],
        f"{other}_params": n_params[other],
        "params_ratio": ratio,
    }
    intervals = {"better test accuracy": interval}
    return Claim(cid, claims.verdict_of(parts), parts, evidence, intervals=intervals)


def _claim_batchnorm(runs: Mapping[str, Sequence[SeedResult]]) -> Claim:
    cid = "batchnorm"
    better, other = CLAIM_MODELS[cid]
    a, b = runs[better], runs[other]
    parts: dict[str, claims.PartState] = {}
    intervals: dict[str, dict[str, Any]] = {}
    for part, value in (
        ("higher validation accuracy", lambda r: r.val_accuracy),
        ("higher test accuracy", lambda r: r.test_accuracy),
    ):
        parts[part], intervals[part] = judge_part(a, b, value)
    k = early_epochs(a, b)
    parts["faster early rise"] = None
    if k:
        parts["faster early rise"], early = judge_part(a, b, lambda r: early_value(r, k))
        intervals["faster early rise"] = early | {"early_epochs": k}
    return Claim(cid, claims.verdict_of(parts), parts, {}, intervals=intervals)


def judge_claims(
    runs: Mapping[str, Sequence[SeedResult]], n_params: Mapping[str, int]
) -> list[Claim]:
    """Both claims, from each model's runs (designated first) and parameter count."""
    judged = []
    for cid, check in (
        ("cnn_vs_mlp", lambda: _claim_cnn_vs_mlp(runs, n_params)),
        ("batchnorm", lambda: _claim_batchnorm(runs)),
    ):
        missing = [m for m in CLAIM_MODELS[cid] if m not in runs]
        judged.append(Claim(cid, claims.NOT_CHECKED, missing=missing) if missing else check())
    return [_english(c) for c in judged]
