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
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stages.cli import StageError
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


class StoreUnavailable(StageError):
    """The MLflow tracking store cannot be used; the message names the URI and the fix."""


def _probe_sqlite(path: Path, timeout_s: float) -> None:
    import sqlite3

    folder = path.parent
    if not folder.is_dir():
        raise OSError(f"its folder {folder} does not exist")
    if not path.exists():
        if not os.access(folder, os.W_OK):
            raise OSError(f"{folder} is not writable, so the database cannot be created")
        return  # MLflow creates it on first use
    if not os.access(path, os.R_OK | os.W_OK):
        raise OSError(f"{path} is not readable and writable")
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout_s)
    try:
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        raise OSError(f"{path} is not a usable SQLite database ({exc})") from None
    finally:
        connection.close()


def _probe_server(uri: str, timeout_s: float) -> None:
    import urllib.error
    import urllib.parse
    import urllib.request

    parts = urllib.parse.urlsplit(uri)
    if parts.scheme in ("http", "https"):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s):
                return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:  # it answers (authentication, an old server without /health)
                return
            raise OSError(f"the server answered HTTP {exc.code}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise OSError(f"no answer ({reason})") from None
    host, port = parts.hostname, parts.port
    if host and port:  # a database URI (postgresql://...): is anything listening?
        with socket.create_connection((host, port), timeout=timeout_s):
            return


def probe_store(uri: str, attempts: int = 3, timeout_s: float = 2.0) -> None:
    """Check the tracking store at ``uri`` answers, before a stage spends time on real work.

    A sqlite file must be a readable SQLite database in an existing, writable folder; a server
    must answer ``/health`` (a database URI: accept a TCP connection). A server gets
    ``attempts`` tries ``timeout_s`` apart at most, so a dead one is reported in seconds.
    Raises :class:`StoreUnavailable` naming ``uri`` and what to do.
    """
    fix = (
        "Start the tracking server, or point MLFLOW_TRACKING_URI at a reachable store "
        f"(unset it to use sqlite:///{main_repo_root() / DB_NAME})."
    )
    try:
        if uri.startswith("sqlite:///"):
            _probe_sqlite(Path(uri[len("sqlite:///") :]), timeout_s)
            return
        for attempt in range(attempts):
            try:
                _probe_server(uri, timeout_s)
                return
            except OSError:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.5 * 2**attempt)
    except OSError as exc:
        if uri.startswith("sqlite:///"):
            fix = (
                "Fix or move that file (a damaged store can be renamed away; MLflow creates a "
                "new one), or point MLFLOW_TRACKING_URI at another store."
            )
        message = f"MLflow tracking store {uri} cannot be used: {exc}. {fix}"
        raise StoreUnavailable(message) from None
