"""Ctrl-C or SIGTERM in the middle of a training: one line, non-zero exit, no partial outputs,
no MLflow run left RUNNING. Real signals to a real training subprocess."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.conftest import VENV_BIN, run, train_until_epoch, write_params

from .conftest import Outcome, listing, report, stage_env


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_training(repo: Path, sig: signal.Signals):
    write_params(repo, models={"cnn": {"epochs": 200}})
    run(["dvc", "repro", "preprocess"], repo)
    before = listing(repo)
    env = stage_env(PATH=f"{VENV_BIN}:{stage_env()['PATH']}")
    env.pop("PYTHONPATH")  # the repo copy's own stages/
    proc, lines = train_until_epoch(repo, "cnn", env)  # really training
    try:
        sent = time.perf_counter()
        proc.send_signal(sig)
        rest = proc.communicate(timeout=60)[0]
    finally:
        proc.kill()
    outcome = Outcome(proc.returncode, rest, time.perf_counter() - sent, set())
    report(f"{sig.name} during training (cnn)", outcome, "unchanged")
    assert proc.returncode == 128 + sig, "".join(lines[-20:]) + rest
    errors = [ln for ln in rest.splitlines() if "ERROR" in ln or "Traceback" in ln]
    assert len(errors) == 1 and "no partial outputs were left" in errors[0], rest[-3000:]
    after = listing(repo)
    new = sorted(set(after) - set(before) - {"mlflow.db", "mlflow.db.lock"})
    assert not (repo / "models/cnn.keras").exists()
    assert [p for p in new if not p.startswith("mlartifacts/")] == [], new

    if (repo / "mlflow.db").exists():
        import mlflow

        client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
        runs = client.search_runs(
            [e.experiment_id for e in client.search_experiments()], max_results=100
        )
        assert all(r.info.status != "RUNNING" for r in runs), [r.info.status for r in runs]
        print("MLflow runs after the signal:", [(r.info.run_name, r.info.status) for r in runs])
