"""The saved view of the experiment's runs table, as MLflow's UI stores one.

MLflow 3.17's runs table shows no metric column until a user picks one, and no server setting
changes that. It does read saved views: an experiment tag :data:`tags.RUNS_VIEW_TAG` whose
value holds the view's name, its times in milliseconds, and the table's state as a JSON
string. The UI lists the view under *Views* and applies it when opened at
``#/experiments/<experiment id>/runs?viewStateShareKey=<view id>`` (``make ui`` prints that).

The compare stage saves it, once the models of an execution are known: each parent run shows
every model's test accuracy as the mean over its seeds, each training under it its model,
seed, test and validation accuracy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from intro_cnn.tracking import tags


def columns(models: Sequence[str]) -> list[str]:
    """The table's columns, in MLflow's column keys."""
    return [
        "params.`model`",
        "params.`seed`",
        "metrics.`test_accuracy`",
        "metrics.`val_accuracy`",
        *(f"metrics.`{m}/seeds/test_accuracy/mean`" for m in models),
        "params.`epochs`",
        "params.`learning_rate`",
        "attributes.`Models`",
    ]


def view_value(models: Sequence[str], now_ms: int | None = None) -> str:
    """The value of :data:`tags.RUNS_VIEW_TAG` for ``models``."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    state = json.dumps({"selectedColumns": columns(models)}, separators=(",", ":"))
    view = {"name": tags.RUNS_VIEW_NAME, "createdAt": now, "updatedAt": now, "state": state}
    return json.dumps(view, separators=(",", ":"))


def is_view_of(value: str | None, models: Sequence[str]) -> bool:
    """Whether a tag's value is this project's view of ``models`` (its times apart)."""
    try:
        view = json.loads(value or "")
        state = json.loads(view["state"])
    except (ValueError, TypeError, KeyError):
        return False
    return view.get("name") == tags.RUNS_VIEW_NAME and state == {"selectedColumns": columns(models)}


def save_runs_view(client: Any, experiment_id: str, models: Sequence[str]) -> bool:
    """Save the view of ``models`` on the experiment unless it is there already (a view edited
    by hand, or of other models, is replaced); whether it was written."""
    current = client.get_experiment(experiment_id).tags.get(tags.RUNS_VIEW_TAG)
    if is_view_of(current, models):
        return False
    client.set_experiment_tag(experiment_id, tags.RUNS_VIEW_TAG, view_value(models))
    return True
