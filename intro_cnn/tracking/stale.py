"""Runs a hard-killed process left RUNNING (SIGKILL, power loss), marked KILLED by the next
process that opens the store: every run records its owner (:data:`OWNER_TAG`), and a run whose
owner on this host is gone is stale. Runs owned by another host are left alone."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any

from intro_cnn.tracking.mlflow_calls import quiet_mlflow
from intro_cnn.tracking.owner import Owner, is_alive
from intro_cnn.tracking.tags import OWNER_TAG, STALE_TAG


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
    (slow to import): a RUNNING run whose owner on this host is gone. A store not there yet
    holds none; any other store (a server) may.
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
    exists (nothing is created). Call under
    :func:`intro_cnn.tracking.mlflow_store.store_lock`."""
    if not _may_hold_stale_runs(uri, experiment):
        return []
    import mlflow

    quiet_mlflow()
    client = mlflow.MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None or found.lifecycle_stage != "active":
        return []
    return mark_stale_runs(client, found.experiment_id)
