"""The ``replicate`` stage of dvc.yaml: train one model again with another seed and test it, to
measure seed noise (:mod:`intro_cnn.replicates.train`).

    python -m stages.replicate cnn_small 2
"""

from __future__ import annotations

import argparse

from intro_cnn import config
from intro_cnn.replicates import train
from intro_cnn.runtime import cli


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train one model again with another seed.")
    parser.add_argument("model", help="a model of `replicates.models` in params.yaml")
    parser.add_argument("seed", type=int, help="a seed of `replicates.seeds` in params.yaml")
    args = parser.parse_args(argv)
    with cli.stage(f"replicate {args.model} seed {args.seed}"):
        params = config.load_params()
        train.check_ready(args.model, args.seed, params)
        train.run(args.model, args.seed, params)


if __name__ == "__main__":
    cli.run_main(main)
