"""Stage ``compare`` of dvc.yaml: every model's evaluation side by side, and the notebook's
claims checked against them.

``python -m stages.compare`` reads the per-model folders under ``reports/train/`` and
``reports/evaluate/`` and writes ``reports/compare/`` and ``reports/comparison.*``; the work is
:func:`intro_cnn.evaluation.compare.run_stage`.
"""

from __future__ import annotations

from intro_cnn.config import load_params
from intro_cnn.evaluation import compare
from intro_cnn.runtime import cli
from intro_cnn.tracking import mlflow_store


def main() -> None:
    with cli.stage("compare"):
        params = load_params()
        uri = mlflow_store.tracking_uri()
        mlflow_store.probe_store(uri)
        compare.run_stage(params, uri)


if __name__ == "__main__":
    cli.run_main(main)
