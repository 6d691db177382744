"""Stage ``evaluate@<model>`` of dvc.yaml: test one trained model on the test split.

``python -m stages.evaluate MODEL`` writes ``reports/evaluate/<model>/`` and logs the test
metrics to MLflow; the work is :func:`intro_cnn.evaluation.evaluate.run_stage`. A missing or
unknown model exits 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from intro_cnn.config import load_params
from intro_cnn.evaluation import evaluate
from intro_cnn.runtime import cli
from intro_cnn.runtime.errors import ConfigError
from intro_cnn.tracking import mlflow_store

USAGE = (
    "usage: python -m stages.evaluate MODEL (a model of params.yaml `models`; "
    "`dvc repro evaluate` evaluates them all)"
)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m stages.evaluate", description="Test one trained model on the test split."
    )
    parser.add_argument("model", nargs="?", metavar="MODEL", help="a key of params.yaml `models`")
    args = parser.parse_args(argv)
    with cli.stage("evaluate"):
        if args.model is None:  # said in the log, like every other way the stage stops
            raise ConfigError(USAGE)
        params = load_params()
        uri = mlflow_store.tracking_uri()
        mlflow_store.probe_store(uri)
        evaluate.run_stage(params, args.model, uri)


if __name__ == "__main__":
    cli.run_main(main)
