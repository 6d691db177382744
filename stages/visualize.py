"""The ``visualize`` stage of dvc.yaml: see :mod:`intro_cnn.reporting.visualize`."""

from intro_cnn.reporting import visualize
from intro_cnn.runtime import cli

if __name__ == "__main__":
    cli.run_main(visualize.main)
