"""MLflow plumbing shared by the stages: where the store is, and safe concurrent access.

Nothing is configured at import time. Stages call :func:`tracking_uri` and :func:`store_lock`
from their ``main()``.

Why the lock: ``dvc queue start -j 2`` runs experiments in parallel processes that share one
SQLite store. SQLite serialises writers, but MLflow's first-use schema migration and bursts of
writes from two processes can still fail with "database is locked". Each stage therefore does
all its MLflow writes in one short critical section under an exclusive ``flock``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stages.config import ROOT

DB_NAME = "mlflow.db"


def main_repo_root(start: Path = ROOT) -> Path:
    """The user's repository, even when DVC runs us in a copy under ``.dvc/tmp/exps``.

    ``dvc exp run --temp`` and queued experiments execute in a temporary copy of the repo
    inside ``<repo>/.dvc/tmp/exps/...``; runs must still land in ``<repo>/mlflow.db``.
    """
    start = start.resolve()
    parts = start.parts
    for i in range(len(parts) - 3):
        if parts[i + 1 : i + 4] == (".dvc", "tmp", "exps"):
            return Path(*parts[: i + 1])
    return start


def tracking_uri(start: Path = ROOT) -> str:
    """``MLFLOW_TRACKING_URI`` if the user set one, else an absolute sqlite path in the repo."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{main_repo_root(start) / DB_NAME}"


def _lock_file(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :] + ".lock")
    if uri.startswith("file:") or "://" not in uri:
        path = Path(uri.removeprefix("file://").removeprefix("file:"))
        return path.parent / (path.name + ".lock")
    return None  # a tracking server serialises writes itself


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock on a local store for the duration of the block."""
    lock = _lock_file(uri)
    if lock is None:
        yield
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def artifact_location(uri: str, experiment: str) -> str | None:
    """Where a new experiment keeps its artifacts: beside a local sqlite store.

    MLflow's default is ``./mlruns`` under the *current* directory, which for
    ``dvc exp run --temp`` is a copy that DVC deletes afterwards.
    """
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        return (db.parent / "mlartifacts" / experiment).resolve().as_uri()
    return None  # a tracking server or file store decides


def experiment_id(client: Any, uri: str, name: str) -> str:
    """The id of experiment ``name``, created (with a safe artifact location) if missing."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(name, artifact_location=artifact_location(uri, name))


def _git(*args: str, cwd: Path) -> str:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def provenance_tags(cwd: Path = ROOT) -> dict[str, str]:
    """Tags every run carries: code version, experiment name, host."""
    commit = _git("rev-parse", "HEAD", cwd=cwd)
    dirty = _git("status", "--porcelain", "--untracked-files=no", cwd=cwd)
    tags = {
        "git_commit": commit or "unknown",
        "git_dirty": str(bool(dirty)).lower() if commit else "unknown",
        "host": socket.gethostname(),
        "python": platform.python_version(),
    }
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_exp_name"] = os.environ["DVC_EXP_NAME"]
    return tags


def quiet_mlflow() -> None:
    """Silence MLflow's per-call chatter (alembic migrations, emoji links) in stage logs."""
    import logging

    for name in ("alembic", "mlflow.store.db.utils", "mlflow.tracking._tracking_service"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
