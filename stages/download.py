"""The ``download`` stage of dvc.yaml: see :mod:`intro_cnn.sources.download`."""

import sys

from intro_cnn.runtime import cli
from intro_cnn.sources import download

if __name__ == "__main__":
    cli.run_main(lambda: download.main(sys.argv[1:]))
