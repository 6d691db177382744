"""The gate refuses metrics that do not belong to the workspace's models, data and params."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from intro_cnn import config
from intro_cnn.evaluation import fingerprint
from intro_cnn.runtime.files import write_json

from .conftest import ROOT, listing, report, spawn

METRICS = {
    name: {"test": {"accuracy": 0.995 - 0.001 * i}}
    for i, name in enumerate(("cnn", "cnn_small", "cnn_small_bn", "mlp"))
}


@pytest.fixture
def evaluated(tmp_path: Path, monkeypatch, new_store) -> Path:
    """A workspace as evaluate leaves it: models, processed data, metrics and their digests.

    The gate refuses these before it loads a model, so their bytes need not be real models
    (tests/reliability/test_gate_evidence.py gates real ones).
    """
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["thresholds"].pop(
        "max_drop", None
    )  # no git baseline here; tested in tests/evaluation/test_gate.py
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    params = config.load_params()
    for name in params.models:
        path = config.model_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"model {name}".encode())
    # A passing gate registers and crowns the logged models the train stage recorded.
    from mlflow import MlflowClient

    uri = new_store(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = MlflowClient(uri)
    experiment = client.create_experiment("intro-cnn")
    for name in params.models:
        logged = client.create_logged_model(experiment, name=name)
        write_json(config.run_info_path(name), {"model_id": logged.model_id})
    config.PROCESSED_MNIST.parent.mkdir(parents=True)
    config.PROCESSED_MNIST.write_bytes(b"processed data")
    write_json(config.COMPARE_METRICS, METRICS)
    write_json(config.COMPARE_INPUTS, fingerprint.fingerprint(params))
    return tmp_path


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("store", ["corrupt sqlite", "nothing listening", "not mlflow"])
def test_a_store_the_gate_cannot_use_stops_it_first_with_exit_2(
    evaluated: Path, store: str, foreign_http: str
):
    """Before any check is judged: no "checks passed" followed by a traceback (corrupt
    mlflow.db), no minutes in MLflow's retries (an unreachable server), no raw MlflowException
    (a port that serves something else)."""
    if store == "corrupt sqlite":
        db = evaluated / "mlflow.db"
        db.write_bytes(b"this is not a database" * 100)
        uri, said = f"sqlite:///{db}", "is not a usable SQLite database"
    elif store == "nothing listening":
        uri, said = f"http://127.0.0.1:{_free_port()}", "no answer"
    else:
        uri, said = foreign_http, "but not as an MLflow tracking server"
    before = listing(evaluated)
    outcome = spawn(["intro_cnn.commands.gate"], evaluated, timeout=60, MLFLOW_TRACKING_URI=uri)
    report(f"gate, store: {store}", outcome, "unchanged")
    assert outcome.code == 2, outcome.stderr
    assert f"MLflow tracking store {uri} cannot be used" in outcome.stderr and said in (
        outcome.stderr
    )
    assert "Traceback" not in outcome.stderr and "checks passed" not in outcome.stderr
    assert not any(m.startswith("tensorflow") for m in outcome.heavy)
    assert listing(evaluated) == before


def test_a_retrained_model_makes_the_metrics_stale(evaluated: Path):
    config.model_path("cnn").write_bytes(b"retrained")
    outcome = spawn(["intro_cnn.commands.gate"], evaluated)
    report("gate after a model changed", outcome, "no output (the gate writes none)")
    assert outcome.code == 1
    assert "models/cnn.keras changed since the evaluation" in outcome.stderr
    assert "rerun `dvc repro compare`" in outcome.stderr
    assert "checks passed" not in outcome.stderr


def test_edited_params_make_the_metrics_stale(evaluated: Path):
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["models"]["cnn"]["epochs"] = 5
    Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    outcome = spawn(["intro_cnn.commands.gate"], evaluated)
    report("gate after params edited, no repro", outcome, "no output")
    assert outcome.code == 1
    assert "params.yaml changed since the evaluation: models.cnn.epochs (20 -> 5)" in (
        outcome.stderr
    )
    assert "rerun `dvc repro` (the models must be retrained" in outcome.stderr


def test_changed_data_and_missing_model_are_named(evaluated: Path):
    config.PROCESSED_MNIST.write_bytes(b"other data")
    config.model_path("mlp").unlink()
    outcome = spawn(["intro_cnn.commands.gate"], evaluated)
    assert outcome.code == 1
    assert "data/processed/mnist.npz changed" in outcome.stderr
    assert "models/mlp.keras is missing" in outcome.stderr


def test_metrics_without_digests_are_refused(evaluated: Path):
    config.COMPARE_INPUTS.unlink()
    outcome = spawn(["intro_cnn.commands.gate"], evaluated)
    report("gate, metrics without digests", outcome, "no output")
    assert outcome.code == 1 and "inputs.json not found" in outcome.stderr
    assert "rerun `dvc repro compare`" in outcome.stderr
