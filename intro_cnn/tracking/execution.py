"""One parent run per pipeline execution: the experiment it lives in, how the stages of one
execution (separate processes) find it, the training runs under it, and how runs end.

Stages call :func:`open_execution` from their ``main()``, under
:func:`intro_cnn.tracking.mlflow_store.store_lock`, and :func:`end_stage` when done. The design
is in ``docs/tracking.md``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from intro_cnn.tracking import tags as tag_names
from intro_cnn.tracking.mlflow_store import (
    TrackingError,
    artifact_location,
    check_experiment_name,
    relocate_store,
    store_lock,
)
from intro_cnn.tracking.owner import Owner, execution_owner, process_owner
from intro_cnn.tracking.provenance import provenance_tags
from intro_cnn.tracking.stale import mark_stale_runs

log = logging.getLogger(__name__)


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
    for key, value in (
        (tag_names.EXPERIMENT_KIND_TAG, tag_names.EXPERIMENT_KIND),
        (tag_names.NOTE_TAG, tag_names.EXPERIMENT_DESCRIPTION),
    ):
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
        from mlflow.exceptions import MlflowException

        try:
            client.delete_experiment("0")
        except MlflowException as exc:  # a shared server's member may not: it stays, harmless
            if exc.error_code != "PERMISSION_DENIED":
                raise


def _has_experiment(client: Any, exp_id: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_experiment(exp_id)
    except MlflowException:
        return False
    return True


def execution_key(owner: Owner) -> str:
    """The key every stage of one execution computes alike, and no other execution does."""
    text = f"{owner.tag()}:{os.environ.get('DVC_EXP_NAME', '')}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def execution_name(tags: Mapping[str, str]) -> str:
    """The parent run's name: the DVC experiment, else ``repro@<commit>``."""
    if tags.get(tag_names.DVC_EXP_TAG):
        return tags[tag_names.DVC_EXP_TAG]
    commit = tags.get("git_commit", "unknown")
    return f"repro@{commit[:8]}" if commit != "unknown" else "repro"


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
    the parent by its :data:`tag_names.EXECUTION_TAG`. Also relocates a copied store, sets up the
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
        filter_string=f"tags.`{tag_names.EXECUTION_TAG}` = '{key}' and "
        f"tags.`{tag_names.ROLE_TAG}` = '{tag_names.ROLE_EXECUTION}'",
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
                tag_names.EXECUTION_TAG: key,
                tag_names.OWNER_TAG: owner.tag(),
                tag_names.ROLE_TAG: tag_names.ROLE_EXECUTION,
                tag_names.SOURCE_NAME_TAG: tag_names.PIPELINE_SOURCE,
                tag_names.NOTE_TAG: "One execution of the pipeline: trainings are its child runs; "
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
        tag_names.PARENT_TAG: execution.parent_run_id,
        tag_names.EXECUTION_TAG: execution.key,
        tag_names.OWNER_TAG: process_owner().tag(),
        tag_names.ROLE_TAG: tag_names.ROLE_TRAINING,
        tag_names.SOURCE_NAME_TAG: tag_names.TRAIN_SOURCE,
        "model": model,
    }


def link_reused_run(client: Any, execution: Execution, model: str, run_id: str) -> bool:
    """Tag the parent with ``model``'s training run when DVC restored it from an earlier
    execution (that run is left untouched); return whether it was reused."""
    from mlflow.exceptions import MlflowException

    try:
        if client.get_run(run_id).data.tags.get(tag_names.EXECUTION_TAG) == execution.key:
            return False
    except MlflowException:
        log.warning("MLflow run %s of %s is not in this store (%s).", run_id, model, execution.uri)
    client.set_tag(execution.parent_run_id, tag_names.REUSED_TAG_PREFIX + model, run_id)
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
    :class:`intro_cnn.runtime.cli.Terminated`), end ``run_ids`` FAILED or KILLED, then
    re-raise. A hard kill is caught by :func:`intro_cnn.tracking.stale.mark_stale_runs` the
    next time."""
    try:
        yield
    except BaseException as exc:
        status = status_for(exc)
        with contextlib.suppress(Exception), store_lock(uri):
            for run_id in run_ids:
                client.set_terminated(run_id, status)
        raise
