"""The ``preprocess`` stage of dvc.yaml: see :mod:`intro_cnn.data.preprocess`."""

from intro_cnn.data import preprocess
from intro_cnn.runtime import cli

if __name__ == "__main__":
    cli.run_main(preprocess.main)
