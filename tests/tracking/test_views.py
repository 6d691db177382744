"""The runs table's saved view (intro_cnn/tracking/views.py) on a real MLflow store: the value
MLflow's UI reads, saved once and replaced when edited or when the models change. What the UI
shows with it: tests/commands/test_tracking.py."""

from __future__ import annotations

import json

import pytest

from intro_cnn import tracking
from intro_cnn.tracking import mlflow_store, views


@pytest.fixture
def client(tmp_path, monkeypatch, new_store):
    from mlflow import MlflowClient

    uri = new_store(tmp_path / "store" / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return MlflowClient(uri)


def test_the_view_is_what_mlflows_ui_reads():
    view = json.loads(views.view_value(["cnn", "mlp"], now_ms=1_700_000_000_000))
    assert view["name"] == tracking.RUNS_VIEW_NAME
    assert view["createdAt"] == view["updatedAt"] == 1_700_000_000_000
    columns = json.loads(view["state"])["selectedColumns"]  # the state is a JSON string
    assert columns[:4] == [
        "params.`model`",
        "params.`seed`",
        "metrics.`test_accuracy`",
        "metrics.`val_accuracy`",
    ]
    assert "metrics.`cnn/seeds/test_accuracy/mean`" in columns
    assert "metrics.`mlp/seeds/test_accuracy/mean`" in columns
    assert f"mlflow.sharedViewState.{tracking.RUNS_VIEW_ID}" == tracking.RUNS_VIEW_TAG


def test_saved_once_then_replaced_when_edited_or_the_models_change(client):
    exp_id = tracking.experiment_id(client, mlflow_store.tracking_uri(), "intro-cnn")
    assert tracking.RUNS_VIEW_TAG not in client.get_experiment(exp_id).tags

    def saved() -> str:
        return client.get_experiment(exp_id).tags[tracking.RUNS_VIEW_TAG]

    assert tracking.save_runs_view(client, exp_id, ["cnn", "mlp"])
    first = saved()
    assert not tracking.save_runs_view(client, exp_id, ["cnn", "mlp"])
    assert saved() == first  # its times untouched

    client.set_experiment_tag(exp_id, tracking.RUNS_VIEW_TAG, '{"name": "Accuracy"}')
    assert tracking.save_runs_view(client, exp_id, ["cnn", "mlp"])
    assert views.is_view_of(saved(), ["cnn", "mlp"])

    assert tracking.save_runs_view(client, exp_id, ["cnn", "mlp", "lenet"])
    assert views.is_view_of(saved(), ["cnn", "mlp", "lenet"])
    assert not views.is_view_of(saved(), ["cnn", "mlp"])
