"""The ``train`` stage of dvc.yaml: fit one model of the registry, save it, and record the run
in MLflow (:mod:`intro_cnn.training.train`).

    python -m stages.train cnn
"""

from __future__ import annotations

import argparse

from intro_cnn import config
from intro_cnn.runtime import cli
from intro_cnn.training import train


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train one model of the registry.")
    parser.add_argument("model", help="a key of the `models` section of params.yaml")
    args = parser.parse_args(argv)
    with cli.stage(f"train {args.model}"):
        params = config.load_params()
        train.check_ready(args.model, params)
        train.run(args.model, params)


if __name__ == "__main__":
    cli.run_main(main)
