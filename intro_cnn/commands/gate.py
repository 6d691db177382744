"""Metric gate for CI: fail when the evaluated models miss the thresholds in ``params.yaml``.

``python -m intro_cnn.commands.gate`` (``make gate``) reads ``reports/compare/metrics.json`` and the
``thresholds`` section::

    thresholds:
      min:                     # model -> metric path in metrics.json -> lowest accepted value
        cnn: {test.accuracy: 0.985}
      better_than:             # model's metric must be strictly greater than than's
        - {model: cnn, than: mlp, metric: test.accuracy}
      max_drop:                # largest accepted fall below the committed baseline
        cnn: {test.accuracy: 0.003}

The baseline of ``max_drop`` is ``reports/compare/metrics.json`` as committed at a git revision
(``--baseline REV``, HEAD by default: in CI, the numbers the pipeline just replaced). A model or
metric the baseline lacks is new and passes that rule; a baseline file missing at that revision
stops the gate (exit 2) rather than silently skip the rule.

Exit status: 0 when every check passes (a table of the checks is logged); 1 when some check
fails, with one line per failure such as ``cnn.test.accuracy 0.9871 < 0.9900``; 2 when the gate
cannot run (no metrics file, malformed thresholds, nothing gated at all, a tracking store that
does not answer as MLflow). A missing model or metric is a failure, never a pass.

No file a user can edit is taken as proof. Metrics whose inputs changed since evaluation are
refused (exit 1, with the command that brings them up to date; digests in
:mod:`intro_cnn.evaluation.fingerprint`), and every gated model is then measured again from its
model file on the processed test split: a metrics file that disagrees is refused (exit 1), and the
thresholds are judged on the measured numbers (:mod:`intro_cnn.evaluation.evidence`).
``--unverified`` skips both, for a quick look at a metrics file, and then moves no alias.

When every check passes, the MLflow alias ``@champion`` of ``intro-cnn-<model>`` moves to the
registered version of every model checked (named in its ``reports/train/<model>/run.json``),
once each version's recorded model-file digest is that of ``models/<model>.keras``; otherwise,
and whenever a check fails, no alias moves.

Not a DVC stage: it judges the pipeline's outputs, it produces none.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from intro_cnn import config, tracking
from intro_cnn.config import (
    PARAMS_FILE,
    ConfigError,
    Params,
    ThresholdsConfig,
    load_params,
    run_info_path,
)
from intro_cnn.evaluation import evidence, fingerprint
from intro_cnn.runtime.errors import EXIT_CONFIG, EXIT_FAILED, ProjectError
from intro_cnn.runtime.files import read_json
from intro_cnn.tracking import mlflow_store

log = logging.getLogger(__name__)


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

    @property
    def key(self) -> str:
        return f"{self.model}.{self.metric}"

    def line(self) -> str:
        """The check in one line, e.g. ``cnn.test.accuracy 0.9871 < 0.9900``."""
        if self.value is None:
            return f"{self.key} missing ({self.problem})"
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


def regressions(
    metrics: Mapping[str, Any],
    baseline: Mapping[str, Any],
    max_drop: Mapping[str, Mapping[str, float]],
    baseline_rev: str,
) -> list[Result]:
    """The regression rule: each metric may fall at most ``max_drop`` below the baseline."""
    results = []
    for model, drops in max_drop.items():
        for metric, limit in drops.items():
            value, problem = lookup(metrics, model, metric)
            before, _ = lookup(baseline, model, metric)
            # The tolerance keeps float rounding (0.9898 - 0.9848 > 0.005) from failing a drop
            # exactly at the limit.
            ok = value is not None and (before is None or before - value <= limit + 1e-9)
            results.append(
                Result(model, metric, value, before, ok, "", problem, limit, baseline_rev)
            )
    return results


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
        value, problem = lookup(metrics, rule.model, rule.metric)
        other, other_problem = lookup(metrics, rule.than, rule.metric)
        if value is not None and other is None:
            problem = other_problem
        ok = value is not None and other is not None and value > other
        results.append(Result(rule.model, rule.metric, value, other, ok, rule.than, problem))
    if thresholds.max_drop:
        if baseline is None:
            raise GateConfigError("thresholds.max_drop is set but no baseline metrics were given.")
        results += regressions(metrics, baseline, thresholds.max_drop, baseline_rev)
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
        if r.max_drop is not None:
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


def load_thresholds(params_file: Path) -> ThresholdsConfig:
    return load_params(params_file).thresholds


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


def checked_versions(results: Sequence[Result]) -> dict[str, str]:
    """The registered model version of every model the gate checked (from its ``run.json``)."""
    versions = {}
    for model in checked_models(results):
        path = run_info_path(model)
        version = read_json(path).get("model_version") if path.exists() else None
        if not version:
            raise GateConfigError(
                f"{path} names no registered model version: rerun `dvc repro train@{model}`."
            )
        versions[model] = str(version)
    return versions


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--metrics", type=Path, default=config.COMPARE_METRICS, help="%(default)s")
    parser.add_argument("--params", type=Path, default=Path(PARAMS_FILE), help="%(default)s")
    parser.add_argument(
        "--baseline",
        default="HEAD",
        metavar="REV",
        help="git revision whose committed metrics file max_drop compares with (%(default)s)",
    )
    parser.add_argument(
        "--inputs",
        type=Path,
        default=None,
        help="digests recorded by evaluate (default: inputs.json beside --metrics)",
    )
    parser.add_argument(
        "--unverified",
        action="store_true",
        help="check the thresholds on the metrics file as it stands, without proving it belongs "
        "to the models (no staleness check, no re-measuring); moves no alias",
    )
    return parser.parse_args(argv)


def fail(lines: Sequence[str], summary: str) -> NoReturn:
    for line in lines:
        log.error("%s", line)
    log.error("gate: %s", summary)
    sys.exit(EXIT_FAILED)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # A store that stops answering must fail the gate in seconds, not in MLflow's retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    forged: list[str] = []
    try:
        params = load_params(args.params)
        if not args.metrics.exists():
            raise GateConfigError(
                f"{args.metrics} not found: run `make repro` (or `dvc repro compare`) first."
            )
        metrics = read_json(args.metrics)
        if not isinstance(metrics, Mapping):
            raise GateConfigError(f"{args.metrics}: expected a mapping of model to metrics.")
        uri = mlflow_store.tracking_uri()
        if not args.unverified:  # the store that @champion lives in, before any slow work
            mlflow_store.probe_store(uri)
        inputs = args.inputs or args.metrics.with_name(config.COMPARE_INPUTS.name)
        stale = [] if args.unverified else staleness(params, inputs)
        if not stale:
            thresholds = params.thresholds
            baseline = (
                committed_metrics(args.baseline, config.COMPARE_METRICS)
                if thresholds.max_drop
                else None
            )
            results = check(metrics, thresholds, baseline, args.baseline)
            if not args.unverified:
                models = [m for m in checked_models(results) if m in metrics]
                measured = evidence.measure(models, params.evaluate.batch_size)
                forged = evidence.disagreements(metrics, measured, checked_metrics(results))
                metrics = {**metrics, **measured.metrics}
                results = check(metrics, thresholds, baseline, args.baseline)
    except (ProjectError, OSError, ValueError) as exc:  # the gate could not run
        log.error("gate: %s", exc)
        sys.exit(EXIT_CONFIG)
    if stale:  # judged before any threshold: these numbers are not the workspace's
        fail(
            [f"  {line}" for line in stale],
            f"{args.metrics} does not belong to the current workspace (above); nothing was gated",
        )
    if forged:
        fail(
            forged,
            f"{args.metrics} is not what the pipeline measured on these models: "
            "rerun `dvc repro` (it re-evaluates what changed); no alias was moved",
        )
    failed = [r for r in results if not r.ok]
    if failed:
        fail(
            [r.line() for r in failed],
            f"{len(failed)} of {len(results)} checks failed (thresholds in {args.params})",
        )
    log.info("%s", table(results))
    if args.unverified:
        log.warning(
            "gate: all %d checks passed on unverified metrics; no alias moved", len(results)
        )
        return
    log.info("gate: all %d checks passed (re-measured from the model files)", len(results))
    crown(uri, checked_versions_or_exit(results))


def checked_versions_or_exit(results: Sequence[Result]) -> dict[str, str]:
    try:
        return checked_versions(results)
    except (ProjectError, OSError, ValueError) as exc:
        log.error("gate: passed, but the champion alias was not set: %s", exc)
        sys.exit(EXIT_CONFIG)


def crown(uri: str, versions: Mapping[str, str]) -> None:
    """Move @champion to ``versions`` once each is proven to be the file the gate measured;
    any other outcome moves nothing and exits non-zero with the reason."""
    import mlflow

    try:
        tracking.quiet_mlflow()
        problems = evidence.version_problems(mlflow.MlflowClient(uri), versions)
        if not problems:
            champions = tracking.set_champions(uri, versions)
    # Whatever the store raises here (a server gone, a database damaged since the probe), the
    # gate could not finish: exit 2 with the reason, never a traceback read as a failed check.
    except Exception as exc:
        log.error("gate: passed, but the champion alias was not set: %s", _one_line(exc))
        sys.exit(EXIT_CONFIG)
    if problems:
        fail(problems, "the registered versions are not the models checked; no alias was moved")
    for name, version in champions.items():
        log.info("gate: %s version %s is @%s", name, version, tracking.CHAMPION_ALIAS)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


if __name__ == "__main__":
    main()
