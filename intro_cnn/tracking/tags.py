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
# Markdown, as the UI renders it: anything in angle brackets stays inside `code` (the UI drops
# what it reads as HTML elsewhere).
EXPERIMENT_DESCRIPTION = (
    "Introducción a Redes Convolucionales, as a DVC pipeline. One parent run per pipeline "
    "execution (`dvc repro` or `dvc exp run`), named after the DVC experiment or the git "
    "commit; its child runs are the trainings (one per model: params, per-epoch metrics, the "
    "logged model). The parent holds the test metrics of every model "
    "(`<model>/test_accuracy`, ...) and the figures of that execution. Compare executions by "
    "selecting parent runs; compare models by expanding one. `make gate` registers the logged "
    "models that passed the thresholds as versions of `intro-cnn-<model>` and points the alias "
    "`@champion` at them. The saved view `Accuracy` (Views, or the address `make ui` prints) "
    "shows each execution's test accuracy of every model, the mean over its seeds, and each "
    "training's model, seed, test and validation accuracy; Columns adds any other metric, "
    "e.g. `cnn/test_accuracy`; the Chart view plots them."
)
# The saved view of the runs table (intro_cnn.tracking.views): MLflow 3.17's experiment tag
# `mlflow.sharedViewState.<id>`, listed under Views and opened by
# `#/experiments/<experiment id>/runs?viewStateShareKey=<id>`.
RUNS_VIEW_ID = "intro-cnn-accuracy"
RUNS_VIEW_TAG = f"mlflow.sharedViewState.{RUNS_VIEW_ID}"
RUNS_VIEW_NAME = "Accuracy"
REGISTERED_MODEL_DESCRIPTION = (
    "The `{model}` network of Introducción a Redes Convolucionales ({architecture}; "
    "{parameters} parameters), trained on MNIST by `dvc repro train@{model}`: one version per "
    "training that `make gate` passed, registered by the gate from the training's logged "
    "model; `@champion` is the newest. Serve it: "
    "`mlflow models serve -m models:/{name}@champion --env-manager local --host 127.0.0.1`. "
    "Input: a batch of greyscale images, shape `(N, H, W)`, pixels 0-255 (params "
    '`pixels="unit"` for 28×28 images already in [0, 1]); output: the 10 digits\' '
    "probabilities. Details: docs/using-the-model.md."
)
# The registered model's tags, beside LAYERS_TAG and PARAMETERS_TAG of its newest promoted model.
REGISTERED_MODEL_TAGS = {"task": "MNIST digit classification", "framework": "keras"}
LAYERS_TAG = "intro_cnn.layers"
PARAMETERS_TAG = "intro_cnn.parameters"

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
