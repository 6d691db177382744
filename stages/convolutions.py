"""The ``convolutions`` stage of dvc.yaml: see :mod:`intro_cnn.demos.convolutions`."""

from intro_cnn.demos import convolutions
from intro_cnn.runtime import cli

if __name__ == "__main__":
    cli.run_main(convolutions.main)
