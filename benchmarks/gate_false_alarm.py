"""How often the gate's regression rule fails an unchanged pipeline, and how often it catches a
real loss, on the seed spread the pipeline measured.

    python benchmarks/gate_false_alarm.py                          # reports/compare/metrics.json
    python benchmarks/gate_false_alarm.py --other other/metrics.json   # against another machine

For each replicated model of ``reports/compare/metrics.json`` (``<model>.seeds``):

- **resampled**: every split of its seeds into a baseline and a new half (2 + 3, both ways),
  judged by the gate's rule (:func:`intro_cnn.evaluation.seeds.regression` at
  ``thresholds.false_alarm``): the share that alarm with nothing changed, and the share that
  alarm when every new seed loses half a point;
- **simulated**: 20,000 draws of two samples of n seeds from a normal distribution with the
  model's measured mean and standard deviation: the false-alarm rate and the power against a
  loss of 0.25, 0.5 and 1 point;
- **other**: with ``--other``, the gate's rule with this file as the baseline and the other as
  the new run (another machine, another arithmetic): the drop, its bound and the verdict.

Prints one table per part; no file is written.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

from intro_cnn import config
from intro_cnn.evaluation import seeds

LOSSES = (0.0025, 0.005, 0.01)


def per_seed(metrics: dict, model: str) -> dict[int, float]:
    node = metrics[model].get("seeds", {}).get("test_accuracy", {}).get("per_seed", {})
    return {int(k): float(v) for k, v in node.items()}


def resampled(values: list[float], alpha: float, loss: float) -> tuple[int, int]:
    """(alarms, splits) over every split of ``values`` into a baseline and a new part of two
    or more each, the new part shifted down by ``loss``."""
    alarms = splits = 0
    idx = range(len(values))
    for k in range(2, len(values) - 1):
        for base in itertools.combinations(idx, k):
            new = [values[i] - loss for i in idx if i not in base]
            splits += 1
            alarms += seeds.regression([values[i] for i in base], new, alpha).regressed
    return alarms, splits


def simulated(mean: float, std: float, n: int, alpha: float, loss: float, trials: int) -> float:
    rng = np.random.default_rng(0)
    base = rng.normal(mean, std, (trials, n))
    new = rng.normal(mean - loss, std, (trials, n))
    return float(
        np.mean(
            [
                seeds.regression(list(b), list(m), alpha).regressed
                for b, m in zip(base, new, strict=True)
            ]
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--metrics", type=Path, default=config.COMPARE_METRICS)
    parser.add_argument("--other", type=Path, help="a metrics.json from another machine")
    parser.add_argument("--trials", type=int, default=20_000)
    args = parser.parse_args()
    alpha = config.load_params().thresholds.false_alarm
    metrics = json.loads(args.metrics.read_text())
    models = [m for m in metrics if len(per_seed(metrics, m)) >= 4]
    print(f"false-alarm rate asked for: {alpha}; models with 4 seeds or more: {models}\n")

    print("resampled splits of the measured seeds (alarms / splits)")
    print(f"{'model':14} {'n':>2} {'sd':>8}  {'no change':>10}  {'-0.5 point':>10}")
    for m in models:
        v = list(per_seed(metrics, m).values())
        same, total = resampled(v, alpha, 0.0)
        lost, _ = resampled(v, alpha, 0.005)
        sd = float(np.std(v, ddof=1))
        print(f"{m:14} {len(v):>2} {sd:8.5f}  {same:>4} / {total:<3}  {lost:>4} / {total:<3}")

    print(f"\nsimulated, n seeds a side, normal with the measured sd ({args.trials} draws each)")
    header = "  ".join(f"-{100 * loss:.2f} pt" for loss in LOSSES)
    print(f"{'model':14} {'n':>2}  {'no change':>9}  {header}")
    for m in models:
        v = list(per_seed(metrics, m).values())
        mean, sd, n = float(np.mean(v)), float(np.std(v, ddof=1)), len(v)
        rates = [simulated(mean, sd, n, alpha, loss, args.trials) for loss in (0.0, *LOSSES)]
        print(f"{m:14} {n:>2}  {rates[0]:9.4f}  " + "  ".join(f"{r:8.3f}" for r in rates[1:]))

    if args.other:
        other = json.loads(args.other.read_text())
        print(f"\n{args.other} as the new run, {args.metrics} as the baseline")
        for m in models:
            new = per_seed(other, m)
            if len(new) < 2:
                continue
            r = seeds.regression(list(per_seed(metrics, m).values()), list(new.values()), alpha)
            verdict = "FAIL" if r.regressed else "pass"
            print(
                f"{m:14} drop {r.drop:+.4f}, {1 - alpha:.0%} lower bound {r.bound:+.4f}: {verdict}"
            )


if __name__ == "__main__":
    main()
