"""``python -m stages.download --check-local``: the MNIST file the user named, checked as the
stage would check it before ``dvc repro`` runs, and what ``dvc repro`` will do with it.

DVC does not track ``$MNIST_LOCAL``, nor the content of the file either setting names: an
up-to-date ``download`` is never rerun for it, so its file would go unread without this check.
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

import numpy as np

from intro_cnn.config import RAW_MNIST, RAW_SOURCES, DataConfig
from intro_cnn.runtime.errors import ConfigError
from intro_cnn.runtime.files import array_sha256, read_json
from intro_cnn.sources.fetch import SOURCE_ERRORS
from intro_cnn.sources.mnist_sources import (
    MNIST_LOCAL_ENV,
    local_failure,
    local_location,
    source_local,
)
from intro_cnn.sources.raw_formats import Record, verify_arrays


class LocalCheckError(ConfigError):
    """The MNIST file the user named cannot be used; the message names it, the problem and
    the fix (exit 2: the stage cannot run as configured)."""


def _arrays_in(path: Path) -> Record | None:
    """The SHA-256 of each array of a Keras-layout ``path``; None when missing or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: array_sha256(npz[name]) for name in sorted(npz.files)}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def check_local(
    cfg: DataConfig, raw_mnist: Path = RAW_MNIST, raw_sources: Path = RAW_SOURCES
) -> str:
    """Check the MNIST file ``$MNIST_LOCAL`` (or ``data.local``) names as the stage would, and
    say what ``dvc repro`` will do with it; raise :class:`LocalCheckError` when it is bad.

    Reads nothing but that file (a URL is fetched to a temporary folder) and ``data/raw``;
    writes nothing.
    """
    location, origin = local_location(cfg)
    if not location:
        return f"Neither {MNIST_LOCAL_ENV} nor data.local is set: no local MNIST file to check."
    if "local" not in cfg.sources:
        raise LocalCheckError(
            f"{origin} is set ({location}), but data.sources {list(cfg.sources)} does not list "
            f"`local`, so the download stage would never read it. Add `local` to data.sources "
            f"in params.yaml, or unset {origin}."
        )
    with tempfile.TemporaryDirectory(prefix="intro-cnn-check-local-") as tmp:
        try:
            arrays, record = source_local(cfg, Path(tmp))
            content = verify_arrays(arrays, cfg.content_sha256)
        except SOURCE_ERRORS as exc:
            raise LocalCheckError(
                f"{local_failure(cfg, exc)} Nothing was written ({raw_mnist.parent} is unchanged)."
            ) from exc
    good = f"{origin} ({location}) is good MNIST (shapes, dtypes and data.content_sha256 match)."
    untracked = (
        f"DVC tracks neither {MNIST_LOCAL_ENV} nor the file's content"
        if origin == MNIST_LOCAL_ENV
        else "DVC tracks data.local's value, not the file's content"
    )
    if _arrays_in(raw_mnist) != content:
        state = "does not exist" if not raw_mnist.exists() else "holds other arrays"
        return (
            f"{good} {raw_mnist} {state}: dvc repro reruns download, which reads this file, "
            f"only if DVC finds the stage changed and not in its run cache ({untracked}); "
            "`dvc repro -f download` always reads it."
        )
    try:
        previous = read_json(raw_sources)["mnist"]
    except (OSError, ValueError, KeyError, TypeError):
        previous = {}
    same = previous.get("source") == "local" and previous.get("file_sha256") == record.get(
        "file_sha256"
    )
    holds = f"{good} {raw_mnist} already holds these arrays"
    if same:
        return (
            f"{holds}; dvc repro will not rerun download, and {raw_sources} already names "
            "this file as their source."
        )
    where = previous.get("location") or "unknown location"
    return (
        f"{holds}; dvc repro will not rerun download for it ({untracked}), so "
        f"{raw_sources} keeps naming the previous source ({previous.get('source', 'unknown')}: "
        f"{where}). Run `dvc repro -f download` to record this file as the source."
    )
