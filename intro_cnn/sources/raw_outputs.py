"""What the download stage writes to ``data/raw``: the arrays as a byte-reproducible
``mnist.npz``, the demo image alone in ``image/``, and ``sources.json``, the record of where
each came from."""

from __future__ import annotations

import shutil
from pathlib import Path

from intro_cnn.config import RAW_IMAGE_DIR, RAW_MNIST, RAW_SOURCES
from intro_cnn.runtime.files import atomic_dir, write_json, write_npz
from intro_cnn.sources.raw_formats import Arrays, Record


def write_image_dir(source: Path, name: str, target_dir: Path = RAW_IMAGE_DIR) -> Path:
    """Make ``target_dir`` hold exactly one file, ``name``: a byte copy of ``source``.

    The new folder is built beside the old one and swapped in, so a failed copy leaves the old
    folder (or nothing), never a folder with two images or half an image.
    """
    target_dir = Path(target_dir)
    with atomic_dir(target_dir) as tmp:
        shutil.copyfile(source, tmp / name)
    return target_dir / name


def write_raw(arrays: Arrays, mnist_record: Record, image: Path, image_record: Record) -> Path:
    """Write ``data/raw/mnist.npz``, the image folder and ``data/raw/sources.json``, each
    atomically (the stage calls this inside ``cli.committing()``); return the image's path."""
    write_npz(RAW_MNIST, arrays)
    written = write_image_dir(image, image_record["file"])
    write_json(RAW_SOURCES, {"mnist": mnist_record, "image": image_record})
    return written
