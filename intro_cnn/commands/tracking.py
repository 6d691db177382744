"""``python -m intro_cnn.commands.tracking``: the MLflow store after a copy, a move or a kill.

``make ui`` runs it first (with the port it serves on), ``make repro`` after ``dvc repro`` (with
``--quiet``): it relocates the store's artifact paths, marks KILLED the runs a dead process left
RUNNING, and prints where the store is.
"""

from __future__ import annotations

import logging
from typing import Any

from intro_cnn import tracking
from intro_cnn.runtime import cli
from intro_cnn.tracking import mlflow_store

log = logging.getLogger(__name__)


# The experiment's runs table in the project's saved view (the accuracy columns). The UI opens
# experiments in its GenAI view unless told otherwise (MLflow 3.17 reads workflowType before
# the experiment's kind tag); a view is applied on the `/runs` page only.
UI_URL = (
    "http://127.0.0.1:{port}/#/experiments/{experiment_id}/runs"
    "?viewStateShareKey={view}&workflowType=machine_learning"
)
UI_HOME = "http://127.0.0.1:{port}/"


def _mark_stale_if_reachable(uri: str, experiment: str) -> list[str]:
    """:func:`intro_cnn.tracking.stale.mark_stale_experiment`, or a warning and nothing when
    ``uri`` is a server that does not answer (``make repro`` after a ``dvc repro`` that had
    nothing to do must not fail, nor wait for MLflow's retries, because of it)."""
    if not uri.startswith("sqlite:///"):
        try:
            mlflow_store.probe_store(uri)
        except mlflow_store.StoreUnavailable as exc:
            log.warning("Runs left RUNNING by a dead process were not looked for: %s", exc)
            return []
    return tracking.mark_stale_experiment(uri, experiment)


def main(argv: list[str] | None = None) -> None:
    """``python -m intro_cnn.commands.tracking``: relocate the store after the repository was
    copied or moved, mark KILLED the runs a dead process left RUNNING, and print where the store is
    (``make ui`` runs this first, with the port it serves on; ``make repro`` after ``dvc
    repro``, with --quiet)."""
    import argparse

    from intro_cnn.config import load_params

    parser = argparse.ArgumentParser(description=main.__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, help="print the UI address on this port")
    parser.add_argument(
        "--quiet", action="store_true", help="print only what was changed (for make repro)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with cli.stage("tracking"):
        experiment = load_params().train.experiment
        uri = mlflow_store.tracking_uri()
        with mlflow_store.store_lock(uri):
            changed = mlflow_store.relocate_store(uri)
            stale = _mark_stale_if_reachable(uri, experiment)
        if changed or not args.quiet:
            log.info("MLflow store %s (%d artifact paths relocated)", uri, changed)
        if stale:
            runs = "run" if len(stale) == 1 else "runs"
            log.info("marked %d %s left RUNNING by a dead process as KILLED", len(stale), runs)
        if args.port:
            import mlflow

            tracking.quiet_mlflow()
            found = mlflow.MlflowClient(uri).get_experiment_by_name(experiment)
            log.info("Open %s", ui_url(args.port, found))


def ui_url(port: int, experiment: Any) -> str:
    """Where ``make ui`` sends the reader: the experiment's runs in the saved view once a
    pipeline run set it up, else the list of experiments (the pipeline has not run yet)."""
    if experiment is None or tracking.RUNS_VIEW_TAG not in experiment.tags:
        return UI_HOME.format(port=port)
    return UI_URL.format(
        port=port, experiment_id=experiment.experiment_id, view=tracking.RUNS_VIEW_ID
    )


if __name__ == "__main__":
    cli.run_main(main)
