"""Nothing lost: after a failed run, restoring params.yaml and `dvc repro` brings the previous
results back from DVC's run cache, without retraining. Real DVC, real training (1 epoch on the
test subset)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import run, write_params

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
    gate = run(["python", "-m", "stages.gate"], repo, check=False)
    print(gate.stderr)
    assert gate.returncode == 1 and "checks passed" not in gate.stderr
    assert "models/cnn_small.keras changed since the evaluation" in gate.stderr
    assert "models.cnn_small.epochs (1 -> 2)" in gate.stderr
