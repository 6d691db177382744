"""The tags this project sets on MLflow experiments and runs, and the values they take.

Other code reads runs by these tags: stages find their execution's parent run by
:data:`EXECUTION_TAG` and :data:`ROLE_TAG` (:mod:`intro_cnn.tracking.execution`), a dead
owner's runs by :data:`OWNER_TAG` (:mod:`intro_cnn.tracking.stale`).
"""

from __future__ import annotations

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

# Tags this project sets. dvc_exp_name and git_* (provenance) have no intro_cnn. prefix: they
# are the names the runs already in a store carry.
EXECUTION_TAG = "intro_cnn.execution"  # digest shared by every run of one pipeline execution
OWNER_TAG = "intro_cnn.owner"  # host:pid:start-time of the process that keeps the run RUNNING
ROLE_TAG = "intro_cnn.role"  # "execution" (parent), "training" or "replicate" (children)
REPLICATE_TAG = "intro_cnn.replicate"  # the seed of a replicate's training run
REUSED_TAG_PREFIX = "intro_cnn.reused."  # + model: a training run of an earlier execution
STALE_TAG = "intro_cnn.stale"
DVC_EXP_TAG = "dvc_exp_name"
SOURCE_NAME_TAG = "mlflow.source.name"  # the runs table's Source column (with the commit)
PIPELINE_SOURCE = "dvc.yaml"
TRAIN_SOURCE = "stages/train.py"

ROLE_EXECUTION = "execution"
ROLE_TRAINING = "training"
ROLE_REPLICATE = "replicate"
REPLICATE_SOURCE = "stages/replicate.py"
