"""What the metric gate checks (``python -m intro_cnn.commands.gate``): the ``thresholds`` of
``params.yaml`` against ``reports/compare/metrics.json``, the baseline that ``max_drop`` compares
with, and whether the metrics belong to the current workspace at all.

Every check is a :class:`Result` with the one line that explains it; :func:`check` runs them
all in params order and :func:`table` lays them out. A missing model or metric is a failure,
never a pass. The baseline of ``max_drop`` is the metrics file as committed at a git revision
(:func:`committed_metrics`): a model or metric it lacks is new and passes that rule, while a
baseline missing at that revision stops the gate rather than silently skip the rule.
:func:`staleness` compares the digests evaluate recorded with the workspace
(:mod:`intro_cnn.evaluation.fingerprint`), and :func:`judge` runs it all, on the numbers
measured again from the model files (:mod:`intro_cnn.evaluation.evidence`).
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from intro_cnn import config
from intro_cnn.config import Params, ThresholdsConfig, run_info_path
from intro_cnn.evaluation import evidence, fingerprint, seeds
from intro_cnn.runtime.errors import ConfigError
from intro_cnn.runtime.files import read_json


class GateConfigError(ConfigError):
    """The thresholds or the metrics file cannot be used (the message says how to fix it)."""


@dataclass(frozen=True)
class Result:
    """One check: ``model``'s ``metric`` against a minimum or against another model."""

    model: str
    metric: str
    # None when the metric (or, for an ordering rule, the other model's) is missing.
    value: float | None
    # The minimum, or the other model's value for an ordering rule.
    threshold: float | None
    ok: bool
    # Set for an ordering rule: the model that must be beaten.
    than: str = ""
    # Why a value is missing.
    problem: str = ""
    # Set for a regression rule: the largest accepted drop, and the baseline's revision.
    max_drop: float | None = None
    baseline_rev: str = ""
    # Set when the rule was judged across seeds: Welch's test of a regression (then value and
    # threshold are the new and the baseline mean), or the ordering rule's difference.
    welch: seeds.Regression | None = None
    diff: seeds.Difference | None = None
    n: tuple[int, int] = (1, 1)  # runs behind value and threshold

    @property
    def key(self) -> str:
        return f"{self.model}.{self.metric}"

    def line(self) -> str:
        """The check in one line, e.g. ``cnn.test.accuracy 0.9871 < 0.9900``."""
        if self.value is None:
            return f"{self.key} missing ({self.problem})"
        if self.welch is not None:
            w = self.welch
            op = "<=" if self.ok else ">"
            return (
                f"{self.key} mean {self.value:.4f} of {self.n[0]} seeds, baseline mean "
                f"{self.threshold:.4f} of {self.n[1]} at {self.baseline_rev}: drop {w.drop:+.4f}, "
                f"{1 - w.alpha:.0%} lower bound {w.bound:+.4f} {op} 0 "
                f"(Welch's one-sided test, false-alarm rate {w.alpha:g})"
            )
        if self.diff is not None:
            d = self.diff
            verdict = "above 0" if self.ok else "not above 0"
            return (
                f"{self.key} minus {self.than}: {d.mean:+.4f}, 95 % interval "
                f"[{d.low:+.4f}, {d.high:+.4f}] ({d.rule}, seeds "
                f"{', '.join(map(str, d.seeds))}): {verdict}"
            )
        if self.max_drop is not None:
            if self.threshold is None:
                return f"{self.key} {self.value:.4f}, no baseline at {self.baseline_rev} (new)"
            drop = self.threshold - self.value
            op = "<=" if self.ok else ">"
            return (
                f"{self.key} {self.value:.4f}, baseline {self.threshold:.4f} at "
                f"{self.baseline_rev}: drop {drop:.4f} {op} max_drop {self.max_drop:.4f}"
            )
        if not self.than:
            op = ">=" if self.ok else "<"
            return f"{self.key} {self.value:.4f} {op} {self.threshold:.4f}"
        other = f"{self.than}.{self.metric}"
        if self.threshold is None:
            return f"{other} missing ({self.problem})"
        op = ">" if self.ok else "<="
        return f"{self.key} {self.value:.4f} {op} {other} {self.threshold:.4f}"


def lookup(metrics: Mapping[str, Any], model: str, metric: str) -> tuple[float | None, str]:
    """``metrics[model]`` followed along the dotted ``metric`` path: (value, why it is missing)."""
    if model not in metrics:
        found = ", ".join(sorted(metrics)) or "none"
        return None, f"no model {model!r} in the metrics; evaluated: {found}"
    node: Any = metrics[model]
    for part in metric.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None, f"no {metric!r} in model {model!r}'s metrics"
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, int | float) or math.isnan(node):
        return None, f"{metric!r} of model {model!r} is not a number: {node!r}"
    return float(node), ""


def per_seed(metrics: Mapping[str, Any], model: str, metric: str) -> dict[int, float]:
    """``model``'s ``metric`` on each seed it was trained with (compare's ``seeds`` entry,
    ``test.accuracy`` read as ``seeds.test_accuracy.per_seed``); {} when it has none."""
    node: Any = metrics.get(model)
    for part in ("seeds", metric.replace(".", "_"), "per_seed"):
        if not isinstance(node, Mapping) or part not in node:
            return {}
        node = node[part]
    try:
        return {int(k): float(v) for k, v in node.items()}
    except (TypeError, ValueError):
        return {}


def _welch(
    model: str, metric: str, new: Mapping[int, float], old: Mapping[int, float], **rule: Any
) -> Result:
    """The regression rule across seeds: fails when the new seeds' mean is below the
    baseline's beyond seed noise, at false-alarm rate ``rule["alpha"]``."""
    w = seeds.regression(list(old.values()), list(new.values()), rule["alpha"])
    new_mean, old_mean = sum(new.values()) / len(new), sum(old.values()) / len(old)
    return Result(
        model,
        metric,
        new_mean,
        old_mean,
        not w.regressed,
        max_drop=rule["limit"],
        baseline_rev=rule["rev"],
        welch=w,
        n=(len(new), len(old)),
    )


def regressions(
    metrics: Mapping[str, Any],
    baseline: Mapping[str, Any],
    max_drop: Mapping[str, Mapping[str, float]],
    baseline_rev: str,
    false_alarm: float = 0.01,
) -> list[Result]:
    """The regression rule. A model with two seeds or more both now and in the baseline is
    judged by Welch's one-sided test at ``false_alarm``; any other may fall at most
    ``max_drop`` below the baseline."""
    results = []
    for model, drops in max_drop.items():
        for metric, limit in drops.items():
            new, old = per_seed(metrics, model, metric), per_seed(baseline, model, metric)
            if len(new) >= 2 and len(old) >= 2:
                rule = {"alpha": false_alarm, "limit": limit, "rev": baseline_rev}
                results.append(_welch(model, metric, new, old, **rule))
                continue
            value, problem = lookup(metrics, model, metric)
            before, _ = lookup(baseline, model, metric)
            # The tolerance keeps float rounding (0.9898 - 0.9848 > 0.005) from failing a drop
            # exactly at the limit.
            ok = value is not None and (before is None or before - value <= limit + 1e-9)
            results.append(
                Result(model, metric, value, before, ok, "", problem, limit, baseline_rev)
            )
    return results


def ordering(metrics: Mapping[str, Any], model: str, than: str, metric: str) -> Result:
    """``model`` beats ``than`` on ``metric``: beyond seed noise (the 95 % interval of the
    difference above 0) when either has replicates, else by value."""
    value, problem = lookup(metrics, model, metric)
    other, other_problem = lookup(metrics, than, metric)
    if value is not None and other is None:
        problem = other_problem
    if value is None or other is None:
        return Result(model, metric, value, other, False, than, problem)
    a, b = per_seed(metrics, model, metric), per_seed(metrics, than, metric)
    if a and b and max(len(a), len(b)) >= 2:
        d = seeds.difference(a, b)
        ok = seeds.direction(d) == seeds.BETTER
        return Result(model, metric, value, other, ok, than, diff=d, n=(len(a), len(b)))
    return Result(model, metric, value, other, value > other, than, problem)


def check(
    metrics: Mapping[str, Any],
    thresholds: ThresholdsConfig,
    baseline: Mapping[str, Any] | None = None,
    baseline_rev: str = "",
) -> list[Result]:
    """Every check the thresholds ask for: minimums, ordering rules, then regressions against
    ``baseline`` (required when ``thresholds.max_drop`` sets any), in params order.

    Raises :class:`GateConfigError` when nothing is gated: an empty gate passing silently would
    hide a misconfiguration.
    """
    results = []
    for model, minimums in thresholds.min.items():
        for metric, minimum in minimums.items():
            value, problem = lookup(metrics, model, metric)
            ok = value is not None and value >= minimum
            results.append(Result(model, metric, value, minimum, ok, problem=problem))
    for rule in thresholds.better_than:
        results.append(ordering(metrics, rule.model, rule.than, rule.metric))
    if thresholds.max_drop:
        if baseline is None:
            raise GateConfigError("thresholds.max_drop is set but no baseline metrics were given.")
        results += regressions(
            metrics, baseline, thresholds.max_drop, baseline_rev, thresholds.false_alarm
        )
    if not results:
        raise GateConfigError(
            "Nothing is gated: params.yaml `thresholds` sets no minimum and no ordering rule. "
            "Add e.g. `thresholds: {min: {cnn: {test.accuracy: 0.985}}}`."
        )
    return results


def table(results: Sequence[Result]) -> str:
    """The checks as an aligned text table: model, metric, value, threshold, ok."""
    rows = [("model", "metric", "value", "threshold", "ok")]
    for r in results:
        value = "missing" if r.value is None else f"{r.value:.4f}"
        if r.welch is not None:
            value = f"mean {value} (n={r.n[0]})"
            threshold = (
                f"no fall beyond seed noise from mean {r.threshold:.4f} (n={r.n[1]}, "
                f"{r.baseline_rev}): bound {r.welch.bound:+.4f}"
            )
        elif r.diff is not None:
            threshold = (
                f"> {r.than} beyond seed noise: {r.diff.mean:+.4f} "
                f"[{r.diff.low:+.4f}, {r.diff.high:+.4f}]"
            )
        elif r.max_drop is not None:
            before = "none" if r.threshold is None else f"{r.threshold:.4f}"
            threshold = f"drop <= {r.max_drop:.4f} from {before} ({r.baseline_rev})"
        elif r.than:
            limit = "missing" if r.threshold is None else f"{r.threshold:.4f}"
            threshold = f"> {r.than} ({limit})"
        else:
            threshold = f">= {r.threshold:.4f}"
        rows.append((r.model, r.metric, value, threshold, "ok" if r.ok else "FAIL"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def committed_metrics(rev: str, path: Path) -> Mapping[str, Any]:
    """``path`` (relative to the repository root) as committed at git revision ``rev``."""
    spec = f"{rev}:{Path(path).as_posix()}"
    try:
        out = subprocess.run(["git", "show", spec], capture_output=True, text=True, check=False)
    except OSError as exc:
        raise GateConfigError(f"git is needed for the baseline of max_drop: {exc}") from exc
    if out.returncode != 0:
        raise GateConfigError(
            f"No baseline {spec} ({out.stderr.strip()}): commit a metrics file, name another "
            "revision with --baseline REV, or drop thresholds.max_drop."
        )
    data = json.loads(out.stdout)
    if not isinstance(data, Mapping):
        raise GateConfigError(f"{spec}: expected a mapping of model to metrics.")
    return data


def staleness(params: Params, inputs_file: Path) -> list[str]:
    """Why the metrics beside ``inputs_file`` do not belong to the current workspace ([] if
    they do); the last line says what to rerun."""
    if not inputs_file.exists():
        problems = [f"{inputs_file} not found: the metrics do not say what they were measured on"]
        return [*problems, "rerun `dvc repro compare`"]
    recorded = read_json(inputs_file)
    current = fingerprint.fingerprint(params)
    problems = fingerprint.differences(recorded, current)
    if problems:
        problems.append(f"rerun {fingerprint.rerun_hint(recorded, current)}")
    return problems


def checked_models(results: Sequence[Result]) -> list[str]:
    """Every model a check names, the beaten ones included, in order."""
    return list(dict.fromkeys(m for r in results for m in (r.model, r.than) if m))


def checked_metrics(results: Sequence[Result]) -> list[tuple[str, str]]:
    return [(m, r.metric) for r in results for m in (r.model, r.than) if m]


def checked_logged_models(results: Sequence[Result]) -> dict[str, str]:
    """The logged model of every model the gate checked (the id in its ``run.json``)."""
    found = {}
    for model in checked_models(results):
        path = run_info_path(model)
        model_id = read_json(path).get("model_id") if path.exists() else None
        if not model_id:
            raise GateConfigError(
                f"{path} names no logged model: rerun `dvc repro -f train@{model}`."
            )
        found[model] = str(model_id)
    return found


def read_metrics(path: Path) -> Mapping[str, Any]:
    """The metrics file the gate judges: each model's metrics, by model."""
    if not path.exists():
        raise GateConfigError(f"{path} not found: run `make repro` (or `dvc repro compare`) first.")
    metrics = read_json(path)
    if not isinstance(metrics, Mapping):
        raise GateConfigError(f"{path}: expected a mapping of model to metrics.")
    return metrics


@dataclass(frozen=True)
class Judgement:
    """What the gate found: every check, and why the metrics are not the workspace's
    (``stale``: then nothing was checked) or not what the model files measure (``forged``)."""

    results: list[Result]
    stale: list[str] = field(default_factory=list)
    forged: list[str] = field(default_factory=list)


def judge(
    params: Params,
    metrics: Mapping[str, Any],
    inputs_file: Path,
    baseline_rev: str,
    verify: bool = True,
) -> Judgement:
    """Check ``metrics`` against ``params.thresholds``. With ``verify``, metrics whose inputs
    changed since evaluation (``inputs_file``) are judged stale before any check, and the
    thresholds are judged on the gated models measured again from their files."""
    if verify:
        stale = staleness(params, inputs_file)
        if stale:
            return Judgement([], stale=stale)
    thresholds = params.thresholds
    baseline = (
        committed_metrics(baseline_rev, config.COMPARE_METRICS) if thresholds.max_drop else None
    )
    results = check(metrics, thresholds, baseline, baseline_rev)
    if not verify:
        return Judgement(results)
    models = [m for m in checked_models(results) if m in metrics]
    trained = {m: params.seeds_of(m) for m in models if m in params.models}
    measured = evidence.measure(models, params.evaluate.batch_size, trained)
    forged = evidence.disagreements(metrics, measured, checked_metrics(results))
    results = check({**metrics, **measured.metrics}, thresholds, baseline, baseline_rev)
    return Judgement(results, forged=forged)
