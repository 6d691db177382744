"""Nothing lost: after a failed run, restoring params.yaml and `dvc repro` brings the previous
results back from DVC's run cache, without retraining. Real DVC, real training (1 epoch on the
test subset). And nothing left RUNNING: after a hard kill, `python -m
intro_cnn.commands.tracking` (which `make repro` runs after `dvc repro`, and `make ui` before
the UI) marks the dead runs KILLED."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from intro_cnn import tracking
from tests.conftest import run, write_params
from tests.reliability.conftest import spawn

OUTPUTS = (
    "models/cnn_small.keras",
    "reports/train/cnn_small/metrics.json",
    "reports/train/cnn_small/history.csv",
    "reports/train/cnn_small/run.json",
    "reports/evaluate/cnn_small/metrics.json",
    "reports/compare/metrics.json",
    "reports/compare/inputs.json",
    "reports/comparison.md",
    "reports/index.html",
)


def snapshot(repo: Path) -> dict[str, bytes | None]:
    return {p: (repo / p).read_bytes() if (repo / p).exists() else None for p in OUTPUTS}


@pytest.mark.slow
@pytest.mark.pipeline
def test_failed_run_then_restored_params_come_back_from_the_cache(trained_repo: Path):
    repo = trained_repo  # `dvc repro` ran there: one epoch per model, its results committed
    good = snapshot(repo)
    assert all(v is not None for v in good.values())
    good_params = (repo / "params.yaml").read_text()

    # A new experiment that fails: cnn_small retrains, then evaluate cannot reach the store.
    write_params(repo, models={"cnn_small": {"epochs": 2}})
    failed = run(
        ["dvc", "repro"],
        repo,
        env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"},  # nothing listens on port 9
        check=False,
    )
    assert failed.returncode != 0
    assert "MLflow tracking store http://127.0.0.1:9 cannot be used" in failed.stderr
    print("after the failure:", {p: v is not None for p, v in snapshot(repo).items()})

    # Back to the previous params: everything is restored, nothing retrains.
    (repo / "params.yaml").write_text(good_params)
    start = time.perf_counter()
    again = run(["dvc", "repro"], repo)
    seconds = time.perf_counter() - start
    print(f"\nrestore took {seconds:.1f} s\n{again.stdout[-3000:]}")
    assert "Running stage 'train@" not in again.stdout, again.stdout
    assert "Running stage 'evaluate@" not in again.stdout
    restored = snapshot(repo)
    for path in OUTPUTS:
        assert restored[path] == good[path], f"{path} differs from before the failure"
    status = run(["dvc", "status"], repo).stdout
    assert "up to date" in status.lower(), status
    gate_params = yaml.safe_load(good_params)
    assert gate_params["models"]["cnn_small"]["epochs"] == 1
    metrics = json.loads(restored["reports/compare/metrics.json"])
    assert set(metrics) == {"cnn", "cnn_small", "cnn_small_bn", "mlp"}

    # A failed evaluate leaves the previous metrics, which the gate then refuses as stale.
    write_params(repo, models={"cnn_small": {"epochs": 2}})
    run(["dvc", "repro", "train@cnn_small"], repo)
    artifacts = repo / "mlartifacts" / "intro-cnn"
    shutil.rmtree(artifacts)
    artifacts.write_text("not a folder: MLflow cannot store artifacts here")
    before = snapshot(repo)
    evaluate = run(["python", "-m", "stages.evaluate", "cnn_small"], repo, check=False)
    print(evaluate.stderr[-1500:])
    assert evaluate.returncode == 1 and "evaluate failed" in evaluate.stderr
    assert snapshot(repo) == before  # nothing written: metrics.json is the old one
    gate = run(["python", "-m", "intro_cnn.commands.gate"], repo, check=False)
    print(gate.stderr)
    assert gate.returncode == 1 and "checks passed" not in gate.stderr
    assert "models/cnn_small.keras changed since the evaluation" in gate.stderr
    assert "models.cnn_small.epochs (1 -> 2)" in gate.stderr


def test_runs_of_a_killed_execution_end_killed_without_any_stage(workdir: Path, new_store):
    """What `make repro` does after a `dvc repro` that restored everything from the run cache
    (so no stage opened the store): the runs of a SIGKILLed execution end KILLED, a live
    execution's (a parallel `dvc exp run`) stay RUNNING, other experiments are not touched."""
    from mlflow import MlflowClient

    uri = new_store(workdir / "mlflow.db")
    client = MlflowClient(uri)
    experiment = yaml.safe_load((workdir / "params.yaml").read_text())["train"]["experiment"]
    exp_id = tracking.experiment_id(client, uri, experiment)
    other_id = tracking.experiment_id(client, uri, "someone-else")
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = tracking.process_owner(victim.pid)  # the `dvc repro` about to be SIGKILLed
    victim.kill()
    victim.wait()
    alive = tracking.process_owner()  # this process: a parallel execution still running

    def running(exp: str, owner: tracking.Owner) -> str:
        return client.create_run(exp, tags={tracking.OWNER_TAG: owner.tag()}).info.run_id

    killed = [running(exp_id, dead), running(exp_id, dead)]
    live = running(exp_id, alive)
    elsewhere = running(other_id, dead)

    out = spawn(["intro_cnn.commands.tracking", "--quiet"], workdir, MLFLOW_TRACKING_URI=uri)
    assert out.code == 0, out.errors
    assert out.errors == ["marked 2 runs left RUNNING by a dead process as KILLED"]
    for run_id in killed:
        assert client.get_run(run_id).info.status == "KILLED"
        assert "gone" in client.get_run(run_id).data.tags[tracking.STALE_TAG]
    assert client.get_run(live).info.status == "RUNNING"
    assert client.get_run(elsewhere).info.status == "RUNNING"  # not params' experiment

    # Nothing left to mark (make repro when nothing changed): silent, and MLflow not imported.
    again = spawn(["intro_cnn.commands.tracking", "--quiet"], workdir, MLFLOW_TRACKING_URI=uri)
    assert again.code == 0 and again.errors == [], again.errors
    assert "mlflow" not in again.heavy, again.heavy
    assert client.get_run(live).info.status == "RUNNING"
    print(f"\nmarking took {out.seconds:.2f} s, nothing to mark {again.seconds:.2f} s")


def test_no_experiment_yet_nothing_is_marked_or_made(workdir: Path, new_store):
    """A project never run (no store) or a store without the experiment: `python -m
    intro_cnn.commands.tracking` marks nothing and creates neither the store nor the
    experiment."""
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    out = spawn(["intro_cnn.commands.tracking"], workdir, MLFLOW_TRACKING_URI=uri)
    assert out.code == 0, out.errors
    assert out.errors == [f"MLflow store {uri} (0 artifact paths relocated)"]
    assert not (workdir / "mlflow.db").exists()

    new_store(workdir / "mlflow.db")
    out = spawn(["intro_cnn.commands.tracking", "--quiet"], workdir, MLFLOW_TRACKING_URI=uri)
    assert out.code == 0 and out.errors == [], out.errors
    with contextlib.closing(sqlite3.connect(workdir / "mlflow.db")) as db:
        assert db.execute("SELECT name FROM experiments").fetchall() == []
