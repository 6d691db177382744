"""The ``train`` stage of dvc.yaml: see :mod:`intro_cnn.training.train`."""

from intro_cnn.runtime import cli
from intro_cnn.training import train

if __name__ == "__main__":
    cli.run_main(train.main)
