"""The ``report`` stage of dvc.yaml: see :mod:`intro_cnn.reporting.report`."""

from intro_cnn.reporting import report
from intro_cnn.runtime import cli

if __name__ == "__main__":
    cli.run_main(report.main)
