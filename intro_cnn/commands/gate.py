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

When every check passes, the logged model of every model checked (named in its
``reports/train/<model>/run.json``) is registered as a version of ``intro-cnn-<model>``, once its
recorded model-file digest is that of ``models/<model>.keras``, and every ``@champion`` moves to
those versions: all of them, or none (:func:`intro_cnn.tracking.promote`). Whenever a check
fails, nothing is registered and no alias moves.

On a shared server with MLflow's authentication app only the team's CI identity may register
and move aliases: ``INTRO_CNN_GATE_CREDENTIALS`` names a file with its username and password
(:mod:`intro_cnn.tracking.identity`). A refusal exits 2 with who was refused what.

Not a DVC stage: it judges the pipeline's outputs, it produces none. This module is the
command (arguments, exit statuses, the alias); the checks are
:mod:`intro_cnn.evaluation.gate_checks`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from intro_cnn import config, tracking
from intro_cnn.config import PARAMS_FILE, load_params
from intro_cnn.evaluation import evidence
from intro_cnn.evaluation.gate_checks import (
    Result,
    checked_logged_models,
    judge,
    read_metrics,
    table,
)
from intro_cnn.runtime.errors import EXIT_CONFIG, EXIT_FAILED, ProjectError
from intro_cnn.tracking import identity, mlflow_store

log = logging.getLogger(__name__)


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
    try:
        params = load_params(args.params)
        metrics = read_metrics(args.metrics)
        if not args.unverified and (user := identity.use_gate_identity()):
            log.info("gate: acting as %r on the tracking server", user)
        uri = mlflow_store.tracking_uri()
        if not args.unverified:  # the store that @champion lives in, before any slow work
            mlflow_store.probe_store(uri)
        inputs = args.inputs or args.metrics.with_name(config.COMPARE_INPUTS.name)
        found = judge(params, metrics, inputs, args.baseline, verify=not args.unverified)
    except (ProjectError, OSError, ValueError) as exc:  # the gate could not run
        log.error("gate: %s", exc)
        sys.exit(EXIT_CONFIG)
    results = found.results
    if found.stale:  # judged before any threshold: these numbers are not the workspace's
        fail(
            [f"  {line}" for line in found.stale],
            f"{args.metrics} does not belong to the current workspace (above); nothing was gated",
        )
    if found.forged:
        fail(
            found.forged,
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
    crown(uri, checked_logged_models_or_exit(results))


def checked_logged_models_or_exit(results: Sequence[Result]) -> dict[str, str]:
    try:
        return checked_logged_models(results)
    except (ProjectError, OSError, ValueError) as exc:
        log.error("gate: passed, but the champion alias was not set: %s", exc)
        sys.exit(EXIT_CONFIG)


def crown(uri: str, logged_models: Mapping[str, str]) -> None:
    """Register ``logged_models`` and move @champion to them once each is proven to be the
    file the gate measured; any other outcome moves nothing and exits non-zero with the
    reason."""
    import mlflow

    try:
        tracking.quiet_mlflow()
        problems = evidence.logged_model_problems(mlflow.MlflowClient(uri), logged_models)
        if not problems:
            champions = tracking.promote(uri, logged_models)
    except ProjectError as exc:  # a refusal of the server, a logged model not in the store
        log.error("gate: passed, but no alias was moved: %s", exc)
        sys.exit(EXIT_CONFIG)
    # Whatever else the store raises here (a server gone, a database damaged since the probe),
    # the gate could not finish: exit 2 with the reason, never a traceback read as a failed
    # check.
    except Exception as exc:
        log.error("gate: passed, but no alias was moved: %s", _one_line(exc))
        sys.exit(EXIT_CONFIG)
    if problems:
        fail(problems, "the logged models are not the models checked; no alias was moved")
    for name, version in champions.items():
        log.info("gate: %s version %s is @%s", name, version, tracking.CHAMPION_ALIAS)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


if __name__ == "__main__":
    main()
