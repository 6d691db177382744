"""The ``evaluate`` stage of dvc.yaml: see :mod:`intro_cnn.evaluation.evaluate`."""

from intro_cnn.evaluation import evaluate
from intro_cnn.runtime import cli

if __name__ == "__main__":
    cli.run_main(evaluate.main)
