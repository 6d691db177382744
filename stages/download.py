"""The ``download`` stage of dvc.yaml: get MNIST and the demo image, check them, and write them
to ``data/raw`` (see :mod:`intro_cnn.sources`).

``--check-local`` only checks the file ``$MNIST_LOCAL`` or ``data.local`` names and says what
``dvc repro`` will do with it (:mod:`intro_cnn.sources.local_check`); a bad file exits 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pooch

from intro_cnn.config import RAW_MNIST, RAW_SOURCES, load_params
from intro_cnn.runtime import cli
from intro_cnn.runtime.files import file_sha256
from intro_cnn.sources import demo_image, local_check, mnist_sources, raw_outputs

log = logging.getLogger("stages.download")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m stages.download", description="The download stage (dvc.yaml)."
    )
    parser.add_argument(
        "--check-local",
        action="store_true",
        help=f"only check the file ${mnist_sources.MNIST_LOCAL_ENV} or data.local names, as the "
        "stage would, and say whether dvc repro will use it (make repro runs this first); "
        "writes nothing",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.check_local:
        with cli.stage("download --check-local"):
            log.info("%s", local_check.check_local(load_params().data))
        return
    start = time.perf_counter()
    with cli.stage("download"):
        cfg = load_params().data
        pooch.get_logger().setLevel(logging.WARNING)  # We log one line per download ourselves.
        with tempfile.TemporaryDirectory(prefix="intro-cnn-download-") as tmp:
            workdir = Path(tmp)
            arrays, mnist_record = mnist_sources.fetch_mnist(cfg, workdir)
            image, image_record = demo_image.fetch_image(cfg, workdir)
            with cli.committing():
                written = raw_outputs.write_raw(arrays, mnist_record, image, image_record)
        # Inside the stage: a signal here finds the outputs written, and its line says so.
        log.info(
            "Wrote %s (sha256 %s), %s and %s in %.1f s",
            RAW_MNIST,
            file_sha256(RAW_MNIST),
            written,
            RAW_SOURCES,
            time.perf_counter() - start,
        )


if __name__ == "__main__":
    cli.run_main(main)
