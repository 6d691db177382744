"""Seed noise, as numbers: what a set of replicates (one model trained with several seeds)
says about the model, about the difference between two models, and about a regression.

Pure functions over plain floats; the compare stage and the gate call them.

- :func:`summarise`: mean, sample standard deviation, n and a two-sided 95 % Student-t
  interval of the mean.
- :func:`paired_difference`: the mean of per-seed differences ``a - b`` over the seeds both
  models were trained with, with its 95 % interval. Pairing removes what a seed does to both
  models alike (the data order, the first weights' scale).
- :func:`one_against_sample`: one model's single run against another's replicates, when only
  one of the two is replicated: the interval of a new draw from the replicated model's spread.
- :func:`difference`: the paired difference when both share two seeds or more, else the one
  against the sample, else (one run each) no interval.
- :func:`direction`: whether such a difference is ``better``, ``worse`` or
  ``indistinguishable`` from seed noise (the interval holds 0), or ``unchecked`` (fewer than
  two pairs: no interval exists).
- :func:`regression`: Welch's one-sided test of "the new replicates' mean is lower than the
  baseline's by more than ``tolerance``", at false-alarm rate ``alpha``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95  # every interval the project shows
BETTER, WORSE, INDISTINGUISHABLE, UNCHECKED = "better", "worse", "indistinguishable", "unchecked"


@dataclass(frozen=True)
class Summary:
    """Replicates of one quantity: ``low``/``high`` bound the 95 % interval of the mean
    (both equal the mean when n is 1: one run gives no interval)."""

    n: int
    mean: float
    std: float
    low: float
    high: float

    def as_json(self) -> dict[str, float | int]:
        return {"n": self.n, "mean": self.mean, "std": self.std, "low": self.low, "high": self.high}


PAIRED, ONE_AGAINST_SAMPLE, SINGLE = "paired", "one against sample", "single runs"


@dataclass(frozen=True)
class Difference:
    """A difference ``a - b``, its 95 % interval, the seeds behind it and the ``rule`` that made
    the interval (:data:`PAIRED`, :data:`ONE_AGAINST_SAMPLE`, or :data:`SINGLE`: none)."""

    seeds: tuple[int, ...]
    mean: float
    low: float
    high: float
    rule: str = PAIRED

    @property
    def n(self) -> int:
        return len(self.seeds)

    def as_json(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "seeds": list(self.seeds),
            "mean": self.mean,
            "low": self.low,
            "high": self.high,
        }


def t_quantile(p: float, df: float) -> float:
    """Student's t quantile (scipy imported here: the stages refuse bad params before it)."""
    from scipy import stats

    return float(stats.t.ppf(p, df))


def _t_half_width(std: float, n: int, confidence: float = CONFIDENCE) -> float:
    if n < 2:
        return 0.0
    return t_quantile(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)


def summarise(values: Sequence[float]) -> Summary:
    """Mean, sample standard deviation (n - 1) and 95 % t-interval of ``values``."""
    if not values:
        raise ValueError("no replicates to summarise")
    n = len(values)
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    half = _t_half_width(std, n)
    return Summary(n, mean, std, mean - half, mean + half)


def paired_difference(a: Mapping[int, float], b: Mapping[int, float]) -> Difference:
    """``a[seed] - b[seed]`` over the seeds both have: mean and 95 % interval."""
    seeds = tuple(sorted(set(a) & set(b)))
    if not seeds:
        raise ValueError("the two models share no seed: nothing to pair")
    s = summarise([a[k] - b[k] for k in seeds])
    return Difference(seeds, s.mean, s.low, s.high)


def one_against_sample(value: float, sample: Mapping[int, float]) -> Difference:
    """``value`` (one run) minus the mean of ``sample`` (two runs or more of the other model),
    with the 95 % interval ``t(n - 1) * s * sqrt(1 + 1/n)``: the spread of one new run around
    the sample's mean. It assumes both models spread alike across seeds, the one thing a single
    run cannot show; ``seeds`` are the sample's."""
    if len(sample) < 2:
        raise ValueError("one against a sample needs a sample of two runs or more")
    s = summarise(list(sample.values()))
    half = t_quantile(0.5 + CONFIDENCE / 2, s.n - 1) * s.std * math.sqrt(1 + 1 / s.n)
    d = value - s.mean
    return Difference(tuple(sorted(sample)), d, d - half, d + half, ONE_AGAINST_SAMPLE)


def difference(a: Mapping[int, float], b: Mapping[int, float]) -> Difference:
    """``a - b`` by seed, with the best interval the runs allow: paired over two shared seeds
    or more; one against the sample when one side has a single run; otherwise no interval
    (rule :data:`SINGLE`, whose direction is ``unchecked``)."""
    shared = set(a) & set(b)
    if len(shared) >= 2:
        return paired_difference(a, b)
    if len(a) == 1 and len(b) >= 2:
        return one_against_sample(next(iter(a.values())), b)
    if len(b) == 1 and len(a) >= 2:
        flipped = one_against_sample(next(iter(b.values())), a)
        return Difference(flipped.seeds, -flipped.mean, -flipped.high, -flipped.low, flipped.rule)
    if not shared:
        raise ValueError("the two models share no seed and neither has replicates")
    d = paired_difference(a, b)
    return Difference(d.seeds, d.mean, d.low, d.high, SINGLE)


def direction(diff: Difference) -> str:
    """``better`` when the whole interval is above 0, ``worse`` when below, ``indistinguishable``
    when it holds 0; ``unchecked`` without an interval (fewer than two runs behind it)."""
    if diff.rule == SINGLE or diff.n < 2:
        return UNCHECKED
    if diff.low > 0:
        return BETTER
    if diff.high < 0:
        return WORSE
    return INDISTINGUISHABLE


@dataclass(frozen=True)
class Regression:
    """Welch's test of a fall from ``base`` to ``new``: ``drop`` is base mean minus new mean,
    ``bound`` the lowest drop consistent with the data at ``1 - alpha`` (one-sided)."""

    drop: float
    bound: float
    alpha: float
    tolerance: float
    df: float

    @property
    def regressed(self) -> bool:
        return self.bound > self.tolerance


def regression(
    base: Sequence[float], new: Sequence[float], alpha: float, tolerance: float = 0.0
) -> Regression:
    """Whether ``new`` fell below ``base`` by more than ``tolerance``, beyond seed noise.

    Regressed when the one-sided ``1 - alpha`` lower bound of ``mean(base) - mean(new)``
    (Welch's t, unequal variances) exceeds ``tolerance``. When both come from the same
    distribution, and the true drop is at most ``tolerance``, that happens with probability at
    most ``alpha``: the false-alarm rate. Each side needs two replicates or more.
    """
    if len(base) < 2 or len(new) < 2:
        raise ValueError("the regression test needs at least two replicates on each side")
    b, m = summarise(base), summarise(new)
    vb, vn = b.std**2 / b.n, m.std**2 / m.n
    se = math.sqrt(vb + vn)
    drop = b.mean - m.mean
    if se == 0.0:
        return Regression(drop, drop, alpha, tolerance, float("inf"))
    df = (vb + vn) ** 2 / (vb**2 / (b.n - 1) + vn**2 / (m.n - 1))
    bound = drop - t_quantile(1 - alpha, df) * se
    return Regression(drop, bound, alpha, tolerance, df)
