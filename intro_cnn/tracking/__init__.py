"""MLflow plumbing shared by the stages: one parent run per pipeline execution, the training
runs under it, the model registry, and the data as a dataset input.

This package's ``__init__`` is its public API: callers use ``tracking.open_execution``,
``tracking.promote``, ``tracking.MODEL_FILE_TAG``... The modules behind it:

- :mod:`intro_cnn.tracking.tags`: the tags set on experiments and runs, and their values;
- :mod:`intro_cnn.tracking.provenance`: the git commit, clean/dirty, DVC experiment and host;
- :mod:`intro_cnn.tracking.owner`: the process that owns a run (the nearest ``dvc``
  ancestor, from ``/proc``) and whether it still runs;
- :mod:`intro_cnn.tracking.execution`: the experiment, the parent run of an execution, its
  training runs and how runs end;
- :mod:`intro_cnn.tracking.stale`: runs a hard-killed process left RUNNING, marked KILLED;
- :mod:`intro_cnn.tracking.lineage`: the data as an MLflow dataset input;
- :mod:`intro_cnn.tracking.registry`: registered model names, the versions the gate promotes
  and the ``@champion`` alias;
- :mod:`intro_cnn.tracking.identity`: who MLflow calls act as (the gate's CI identity), and
  the project's sentence when a server refuses them;
- :mod:`intro_cnn.tracking.views`: the runs table's saved view (the accuracy columns);
- :mod:`intro_cnn.tracking.mlflow_calls`: MLflow's log chatter silenced, timestamps.

Nothing is configured at import time. Stages call :func:`open_execution` from their ``main()``,
under :func:`intro_cnn.tracking.mlflow_store.store_lock` (where the store is and safe access to
it, including a store that moves with the repo, are in :mod:`intro_cnn.tracking.mlflow_store`).
The design (why a parent run per execution, how stages that are separate processes find it,
what stays immutable) is in ``docs/tracking.md``.
"""

from __future__ import annotations

from intro_cnn.tracking.execution import (
    Execution,
    child_run_tags,
    end_stage,
    ends_honestly,
    execution_key,
    execution_name,
    experiment_id,
    link_reused_run,
    open_execution,
    status_for,
)
from intro_cnn.tracking.lineage import PYPI_PROJECT_URL, dataset, dataset_source
from intro_cnn.tracking.mlflow_calls import now_ms, quiet_mlflow
from intro_cnn.tracking.mlflow_store import TrackingError
from intro_cnn.tracking.owner import Owner, execution_owner, is_alive, process_owner
from intro_cnn.tracking.provenance import (
    EXPERIMENT_WRITES,
    PIPELINE_WRITES,
    provenance_tags,
    user_changes,
)
from intro_cnn.tracking.registry import (
    CHAMPION_ALIAS,
    MODEL_FILE_TAG,
    REGISTERED_MODEL_PREFIX,
    logged_model_tags,
    promote,
    registered_model_name,
)
from intro_cnn.tracking.stale import mark_stale_experiment, mark_stale_runs
from intro_cnn.tracking.tags import (
    DVC_EXP_TAG,
    EXECUTION_TAG,
    EXPERIMENT_DESCRIPTION,
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    NOTE_TAG,
    OWNER_TAG,
    PARENT_TAG,
    PIPELINE_SOURCE,
    REPLICATE_SOURCE,
    REPLICATE_TAG,
    REUSED_TAG_PREFIX,
    ROLE_EXECUTION,
    ROLE_REPLICATE,
    ROLE_TAG,
    ROLE_TRAINING,
    RUNS_VIEW_ID,
    RUNS_VIEW_NAME,
    RUNS_VIEW_TAG,
    SOURCE_NAME_TAG,
    STALE_TAG,
    TRAIN_SOURCE,
)
from intro_cnn.tracking.views import save_runs_view

__all__ = [
    "CHAMPION_ALIAS",
    "DVC_EXP_TAG",
    "EXECUTION_TAG",
    "EXPERIMENT_DESCRIPTION",
    "EXPERIMENT_KIND",
    "EXPERIMENT_KIND_TAG",
    "EXPERIMENT_WRITES",
    "MODEL_FILE_TAG",
    "NOTE_TAG",
    "OWNER_TAG",
    "PARENT_TAG",
    "PIPELINE_SOURCE",
    "PIPELINE_WRITES",
    "PYPI_PROJECT_URL",
    "REGISTERED_MODEL_PREFIX",
    "REPLICATE_SOURCE",
    "REPLICATE_TAG",
    "REUSED_TAG_PREFIX",
    "ROLE_EXECUTION",
    "ROLE_REPLICATE",
    "ROLE_TAG",
    "ROLE_TRAINING",
    "RUNS_VIEW_ID",
    "RUNS_VIEW_NAME",
    "RUNS_VIEW_TAG",
    "SOURCE_NAME_TAG",
    "STALE_TAG",
    "TRAIN_SOURCE",
    "Execution",
    "Owner",
    "TrackingError",
    "child_run_tags",
    "dataset",
    "dataset_source",
    "end_stage",
    "ends_honestly",
    "execution_key",
    "execution_name",
    "execution_owner",
    "experiment_id",
    "is_alive",
    "link_reused_run",
    "logged_model_tags",
    "mark_stale_experiment",
    "mark_stale_runs",
    "now_ms",
    "open_execution",
    "process_owner",
    "promote",
    "provenance_tags",
    "quiet_mlflow",
    "registered_model_name",
    "save_runs_view",
    "status_for",
    "user_changes",
]
