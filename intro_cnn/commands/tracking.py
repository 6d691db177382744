"""``python -m intro_cnn.commands.tracking``: the MLflow store after a copy, a move or a kill.

``make ui`` runs it first (with the port it serves on), ``make repro`` after ``dvc repro`` (with
``--quiet``): it relocates the store's artifact paths, marks KILLED the runs a dead process left
RUNNING, and prints where the store is.
"""

from __future__ import annotations

import logging

from intro_cnn import tracking
from intro_cnn.runtime import cli
from intro_cnn.tracking import mlflow_store

log = logging.getLogger(__name__)


# The UI opens experiments in its GenAI view unless told otherwise (MLflow 3.17 reads this
# query parameter before the experiment's kind tag).
UI_URL = "http://127.0.0.1:{port}/#/experiments/{experiment_id}?workflowType=machine_learning"


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
            exp_id = found.experiment_id if found else "0"
            log.info("Open %s", UI_URL.format(port=args.port, experiment_id=exp_id))


if __name__ == "__main__":
    cli.run_main(main)
