"""The ``preprocess`` stage: the raw MNIST arrays as float images in [0, 1], split into train,
validation and test (``data/processed/mnist.npz``), with their summary for DVC metrics."""

from __future__ import annotations

import logging

from intro_cnn import config
from intro_cnn.data import preprocess
from intro_cnn.runtime import cli, files

log = logging.getLogger(__name__)


def main() -> None:
    with cli.stage("preprocess"):
        params = config.load_params()
        data = preprocess.split_raw(config.RAW_MNIST, params.preprocess.validation_split)
        summary = preprocess.summarize(data)
        with cli.committing():
            # Uncompressed: every training stage loads it, and inflating would cost seconds.
            files.write_npz(config.PROCESSED_MNIST, data, compress=False)
            files.write_json(config.PROCESSED_SUMMARY, summary)
    log.info(
        "train %d, val %d, test %d images -> %s",
        summary["train"]["n"],
        summary["val"]["n"],
        summary["test"]["n"],
        config.PROCESSED_MNIST,
    )


if __name__ == "__main__":
    cli.run_main(main)
