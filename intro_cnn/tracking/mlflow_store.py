"""Where the MLflow store is, and safe access to it: the URI, an exclusive lock, the artifact
folder beside a local store, relocation after the repository was copied or moved, and a probe
that a stage runs before spending time on real work.

Nothing is configured at import time. Stages call :func:`tracking_uri` and :func:`store_lock`
(and :func:`probe_store` first) from their ``main()``; the runs themselves are
:mod:`intro_cnn.tracking.execution`'s.

Why the lock: ``dvc queue start -j 2`` runs experiments in parallel processes that share one
SQLite store. SQLite serialises writers, but MLflow's first-use schema migration and bursts of
writes from two processes can still fail with "database is locked". Each stage therefore does
all its MLflow writes in one short critical section under an exclusive ``flock``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from intro_cnn.config import ROOT
from intro_cnn.runtime.errors import StageError

DB_NAME = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"  # beside the store: <repo>/mlartifacts/<experiment>/...

_EXPERIMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.+-]{0,99}$")


class TrackingError(StageError, ValueError):
    """The MLflow set-up cannot be used: a bad experiment name, a deleted experiment, a model
    version missing from the store (the message says how to fix it; exit 1)."""


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


def check_experiment_name(name: str) -> str:
    """``name`` if it is a safe experiment name, else :class:`TrackingError`.

    The name becomes a folder under ``mlartifacts/``: no path separators, no ``..``, nothing
    that could escape the repository.
    """
    if not isinstance(name, str) or not _EXPERIMENT_NAME.match(name) or ".." in name:
        raise TrackingError(
            f"train.experiment {name!r} is not a valid experiment name: use 1-100 letters, "
            "digits, spaces, '_', '-', '+' or '.', starting with a letter or digit, without "
            "'/', '\\' or '..' (e.g. `intro-cnn`). Fix it in params.yaml."
        )
    return name


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def artifact_root(uri: str) -> Path | None:
    """The folder beside a local sqlite store that holds its artifacts, else None."""
    db = _sqlite_path(uri)
    return None if db is None else db.parent.resolve() / ARTIFACTS_DIR


def artifact_location(uri: str, experiment: str) -> str | None:
    """Where a new experiment keeps its artifacts: beside a local sqlite store.

    MLflow's default is ``./mlruns`` under the *current* directory, which for
    ``dvc exp run --temp`` is a copy that DVC deletes afterwards.
    """
    root = artifact_root(uri)
    if root is None:
        return None  # a tracking server or file store decides
    return (root / check_experiment_name(experiment)).as_uri()


# (table, column) pairs of MLflow's SQL schema that hold artifact URIs.
_ARTIFACT_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "storage_location"),
    ("model_versions", "source"),
)


def relocate_store(uri: str) -> int:
    """Point a copied or moved sqlite store at the artifacts beside it; return rows changed.

    MLflow records absolute ``file://`` artifact URIs. After ``cp -r``/``mv`` of the repository
    they name the old folder: the UI and ``models:/`` URIs would read, and new runs write,
    there. Every URI under another ``.../mlartifacts/`` is rewritten to this store's
    ``mlartifacts/``. Call under :func:`store_lock`; a no-op for other stores.
    """
    db, root = _sqlite_path(uri), artifact_root(uri)
    if db is None or root is None or not db.exists():
        return 0
    new = root.as_uri() + "/"
    marker = f"/{ARTIFACTS_DIR}/"
    changed = 0
    with contextlib.closing(sqlite3.connect(db, timeout=60)) as con, con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "experiments" not in tables:
            return 0
        olds = set()
        for table, column in _ARTIFACT_COLUMNS:
            if table not in tables:
                continue
            for (value,) in con.execute(f'SELECT DISTINCT "{column}" FROM "{table}"'):
                if value and value.startswith("file://") and marker in value:
                    old = value[: value.rindex(marker) + len(marker)]
                    if old != new:
                        olds.add(old)
        for old in olds:
            for table, column in _ARTIFACT_COLUMNS:
                if table in tables:
                    cur = con.execute(
                        f'UPDATE "{table}" SET "{column}" = ? || substr("{column}", ?) '
                        f'WHERE substr("{column}", 1, ?) = ?',
                        (new, len(old) + 1, len(old), old),
                    )
                    changed += cur.rowcount
    return changed


class StoreUnavailable(StageError):
    """The MLflow tracking store cannot be used; the message names the URI and the fix."""


def _probe_sqlite(path: Path, timeout_s: float) -> None:
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


class NotMlflow(OSError):
    """Something answers at the address, but not as an MLflow tracking server: a definite
    answer, so it is not retried."""


# A read every MLflow server answers in its own JSON, found or not, with or without auth.
PROBE_PATH = "/api/2.0/mlflow/experiments/get-by-name?experiment_name=Default"
CREDENTIALS_FIX = (
    "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) "
    "to an account on that server"
)


def _auth_header() -> dict[str, str]:
    import base64

    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return {"Authorization": f"Bearer {token}"}
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        pair = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}
    return {}


def _mlflow_json(body: bytes) -> dict | None:
    import json

    try:
        data = json.loads(body)
    except ValueError:
        return None
    return (
        data if isinstance(data, dict) and ("experiment" in data or "error_code" in data) else None
    )


def _probe_server(uri: str, timeout_s: float) -> None:
    import urllib.error
    import urllib.parse
    import urllib.request

    parts = urllib.parse.urlsplit(uri)
    if parts.scheme in ("http", "https"):
        url = uri.rstrip("/") + PROBE_PATH
        request = urllib.request.Request(url, headers=_auth_header())
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as answer:
                code, body = answer.status, answer.read(65536)
        except urllib.error.HTTPError as exc:
            code, body = exc.code, exc.read(65536)
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise OSError(f"no answer ({reason})") from None
        if code >= 500:
            raise OSError(f"the server answered HTTP {code}")
        if code == 401:
            said = "refused the credentials given" if _auth_header() else "needs credentials"
            raise NotMlflow(f"the server {said} (HTTP 401): {CREDENTIALS_FIX}")
        if code == 403:  # MLflow's auth app: signed in, but no read on Default
            return
        if _mlflow_json(body) is None:
            raise NotMlflow(
                f"something answers there (HTTP {code}), but not as an MLflow tracking server "
                f"(GET {PROBE_PATH} gave no MLflow answer): check the host and port"
            )
        return
    host, port = parts.hostname, parts.port
    if host and port:  # a database URI (postgresql://...): is anything listening?
        with socket.create_connection((host, port), timeout=timeout_s):
            return


def probe_store(uri: str, attempts: int = 3, timeout_s: float = 2.0) -> None:
    """Check the tracking store at ``uri`` answers, before a stage spends time on real work.

    A sqlite file must be a readable SQLite database in an existing, writable folder; a server
    must answer an MLflow read in MLflow's JSON, with the credentials in the environment (a
    database URI: accept a TCP connection). A server gets
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
            except NotMlflow:
                raise
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
