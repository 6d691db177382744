"""The ``compare`` stage of dvc.yaml: see :mod:`intro_cnn.evaluation.compare`."""

from intro_cnn.evaluation import compare
from intro_cnn.runtime import cli

if __name__ == "__main__":
    cli.run_main(compare.main)
