"""Tests of the compare stage: the claims, the comparison files, the aggregated metrics and
input digests, the gathered histories, MLflow, and DVC reading the metrics."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import yaml

from intro_cnn import config
from intro_cnn.config import ROOT
from intro_cnn.evaluation import across_seeds, claim_checks, claims, fingerprint
from intro_cnn.evaluation import compare as cmp
from intro_cnn.evaluation import metrics as em
from intro_cnn.evaluation.errors import CompareError
from intro_cnn.replicates.outputs import SeedResult
from intro_cnn.runtime.files import read_json, write_json
from stages import compare


# --------------------------------------------------------------------------------------
# Claims
# --------------------------------------------------------------------------------------
def row(model: str, params: int, val: float, test: float) -> cmp.ComparisonRow:
    return cmp.ComparisonRow(model, params, 10, 60.0, 9000.0, val, test, 0.05, 20000.0)


def test_comparison_outputs():
    rows = [row("cnn", 61_482, 0.99, 0.991), row("mlp", 669_706, 0.98, 0.982)]
    runs = {
        "cnn": [SeedResult("cnn", 1, 0.991, 0.99, (0.99,))],
        "mlp": [SeedResult("mlp", s, t, 0.98, (0.98,)) for s, t in ((1, 0.982), (2, 0.981))],
    }
    judged = claim_checks.judge_claims(runs, {"cnn": 61_482, "mlp": 669_706})
    spread = across_seeds.aggregates(runs)
    assert spread["mlp"]["test_accuracy"] == {
        "mean": 0.9815,
        "std": pytest.approx(0.000707, abs=1e-6),
        "low": pytest.approx(0.9815 - 12.706205 * 0.0005, abs=1e-6),
        "high": pytest.approx(0.9815 + 12.706205 * 0.0005, abs=1e-6),
        "per_seed": {"1": 0.982, "2": 0.981},
    }
    assert (spread["cnn"]["n"], spread["cnn"]["seeds"]) == (1, [1])
    md = cmp.comparison_markdown(rows, judged, spread)
    assert "| cnn | 61,482 | 10 | 60.0 | 9,000 | 0.9900 | 0.9910 | 0.0500 | 20,000 |" in md
    assert "| mlp | 1, 2 | 2 | 0.9815 ± 0.0007 | [0.9751, 0.9879] | 0.9820, 0.9810 |" in md
    assert "| cnn | 1 | 1 | 0.9910 ± 0.0000 | — | 0.9910 |" in md
    assert "Verdict: **partly holds**" in md and "Verdict: **not checked**" in md
    parsed = list(csv.DictReader(cmp.comparison_csv(rows).splitlines()))
    assert parsed[1]["model"] == "mlp" and float(parsed[1]["test_accuracy"]) == 0.982
    as_json = json.loads(json.dumps(cmp.claims_json(judged)))
    assert [c["verdict"] for c in as_json] == ["partly holds", "not checked"]
    # claims.json is the shared schema the report reads back.
    assert [claims.Claim.from_json(c) for c in as_json] == [
        claims.Claim.from_json(asdict(c)) for c in judged
    ]


def test_history_table_gathers_every_model_with_a_model_column():
    rows = {
        "cnn": [{"epoch": "1", "val_accuracy": "0.9"}, {"epoch": "2", "val_accuracy": "0.95"}],
        "mlp": [{"epoch": "1", "val_accuracy": "0.8"}],
    }
    table = list(csv.DictReader(cmp.history_table(rows).splitlines()))
    assert [(r["model"], r["epoch"], r["val_accuracy"]) for r in table] == [
        ("cnn", "1", "0.9"),
        ("cnn", "2", "0.95"),
        ("mlp", "1", "0.8"),
    ]
    with pytest.raises(CompareError, match="has columns"):
        cmp.history_table(rows | {"x": [{"epoch": "1", "loss": "0.1"}]})


def test_fingerprint_merge_equals_the_whole_and_flags_disagreement(tmp_path, monkeypatch):
    params = config.load_params(ROOT / "params.yaml")
    monkeypatch.chdir(tmp_path)  # a workspace of its own: a clean clone has no models yet
    for i, path in enumerate([config.PROCESSED_MNIST, *map(config.model_path, params.models)]):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes([i]) * 10)
    whole = fingerprint.fingerprint(params)
    assert None not in whole["models"].values() and whole["data"] is not None
    parts = [fingerprint.for_model(params, name) for name in params.models]
    assert fingerprint.merge(parts) == whole
    assert fingerprint.differences(fingerprint.merge(parts), whole) == []
    # A model's part reads only its own file: the others may be absent (not yet trained).
    config.model_path("mlp").unlink()
    assert fingerprint.for_model(params, "cnn") == parts[0]
    assert fingerprint.for_model(params, "mlp")["models"] == {"mlp": None}
    odd = json.loads(json.dumps(parts))
    odd[0]["data"] = "0" * 64  # one model evaluated on other data
    odd[1]["params"]["seed"] = {"seed": 99}
    problems = fingerprint.differences(fingerprint.merge(odd), whole)
    assert any("changed since the evaluation" in p for p in problems)
    assert any("seed" in p for p in problems)


# --------------------------------------------------------------------------------------
# The stage end to end: per-model folders in, aggregated files and MLflow out
# --------------------------------------------------------------------------------------
def _model_folders(name: str, accuracy: float, params: int, val: list[float], run: dict) -> None:
    """What `dvc repro train@name evaluate@name` leave behind."""
    t = config.TRAIN_DIR / name
    write_json(
        t / "metrics.json",
        {"val": {"accuracy": val[-1], "loss": 1.0}, "epochs": len(val), "params": params},
    )
    write_json(t / "timing.json", {"wall_seconds": 12.5, "samples_per_second": 4000.0})
    lines = ["epoch,accuracy,loss,val_accuracy,val_loss"]
    lines += [f"{i},0.5,1.0,{v},1.0" for i, v in enumerate(val, 1)]
    (t / "history.csv").write_text("\n".join(lines) + "\n")
    e = config.eval_dir(name)
    test = {"accuracy": accuracy, "loss": 0.2, "macro_f1": accuracy}
    write_json(e / config.EVAL_METRICS, {"test": test, "params": params})
    write_json(e / config.EVAL_TIMING, {"inference_images_per_s": 5000.0})
    write_json(e / config.EVAL_RUN, run)
    write_json(e / config.EVAL_INPUTS, {"data": "d", "models": {name: "m"}, "params": {}})


def _replicate_folder(name: str, seed: int, accuracy: float, val: list[float]) -> None:
    """What `dvc repro replicate@<name>-<seed>` leaves behind (its model file aside)."""
    from intro_cnn.replicates.outputs import metrics_json

    folder = config.replicate_dir(name, seed)
    history = [{"val_accuracy": v} for v in val]
    test = {"accuracy": accuracy, "loss": 0.2, "macro_f1": accuracy}
    write_json(folder / config.REPLICATE_METRICS, metrics_json(seed, test, history))
    lines = ["epoch,accuracy,loss,val_accuracy,val_loss"]
    lines += [f"{i},0.5,1.0,{v},1.0" for i, v in enumerate(val, 1)]
    (folder / config.REPLICATE_HISTORY).write_text("\n".join(lines) + "\n")


def test_stage_end_to_end(tmp_path, monkeypatch, caplog, new_store):
    uri = new_store(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["models"] = {m: raw["models"][m] for m in ("cnn", "mlp")}
    raw["replicates"] = {"models": ["mlp"], "seeds": [2, 3]}
    Path("params.yaml").write_text(yaml.safe_dump(raw))
    from mlflow import MlflowClient

    from intro_cnn import tracking
    from intro_cnn.tracking import views as tracking_views

    client = MlflowClient(uri)
    execution = tracking.open_execution(client, uri, "intro-cnn")
    run = {"run_id": "r", "parent_run_id": execution.parent_run_id, "restored": False}
    _model_folders("cnn", 0.99, 61_482, [0.97, 0.98], run)
    _model_folders("mlp", 0.98, 669_706, [0.96], run)
    for seed, accuracy in ((2, 0.981), (3, 0.979)):
        _replicate_folder("mlp", seed, accuracy, [0.95])
    _replicate_folder("mlp", 4, 0.5, [0.5])  # not asked for: never read
    write_json(config.eval_dir("stale") / config.EVAL_METRICS, {"test": {}})  # not in params

    compare.main()

    metrics = read_json(config.COMPARE_METRICS)
    assert metrics["cnn"]["test"] == {"accuracy": 0.99, "loss": 0.2, "macro_f1": 0.99}
    assert metrics["cnn"]["seeds"]["test_accuracy"]["per_seed"] == {"1": 0.99}
    spread = metrics["mlp"]["seeds"]
    assert (spread["n"], spread["seeds"]) == (3, [1, 2, 3])
    assert spread["test_accuracy"]["per_seed"] == {"1": 0.98, "2": 0.981, "3": 0.979}
    assert spread["test_accuracy"]["mean"] == pytest.approx(0.98)
    assert spread["test_accuracy"]["std"] == pytest.approx(0.001)
    assert spread["val_accuracy"]["per_seed"] == {"1": 0.96, "2": 0.95, "3": 0.95}
    # The first DVC metrics file: each model's test accuracy, the mean over its seeds, alone.
    assert read_json(config.COMPARE_ACCURACY) == {
        "accuracy": {"cnn": 0.99, "mlp": spread["test_accuracy"]["mean"]}
    }
    assert read_json(config.COMPARE_TIMING)["mlp"] == {"inference_images_per_s": 5000.0}
    assert read_json(config.COMPARE_RUNS)["cnn"] == run
    assert read_json(config.COMPARE_INPUTS)["models"] == {"cnn": "m", "mlp": "m"}
    verdicts = {c["id"]: c["verdict"] for c in read_json(config.COMPARE_CLAIMS)}
    assert verdicts == {"cnn_vs_mlp": "holds", "batchnorm": "not checked"}
    assert "| mlp | 1, 2, 3 | 3 | 0.9800 ± 0.0010 |" in config.COMPARISON_MD.read_text()
    md = config.COMPARISON_MD.read_text()
    assert "| cnn | 61,482 | 2 | 12.5 | 4,000 | 0.9800 | 0.9900 | 0.2000 | 5,000 |" in md
    assert config.COMPARISON_CSV.read_text().startswith("model,params,epochs,")
    history = list(csv.DictReader(config.COMPARE_HISTORY.read_text().splitlines()))
    assert [(r["model"], r["epoch"]) for r in history] == [("cnn", "1"), ("cnn", "2"), ("mlp", "1")]
    parent = client.get_run(execution.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["mlp/seeds/test_accuracy/mean"] == pytest.approx(0.98)
    assert parent.data.metrics["mlp/seeds/n"] == 3
    view = client.get_experiment(execution.experiment_id).tags[tracking.RUNS_VIEW_TAG]
    assert tracking_views.is_view_of(view, ["cnn", "mlp"])
    logged = {a.path for a in client.list_artifacts(execution.parent_run_id, "evaluate")}
    assert {"evaluate/comparison.md", "evaluate/claims.json"} <= logged

    # A model's evaluation missing: one line naming the stage to run, nothing written.
    before = config.COMPARE_METRICS.read_bytes()
    os.remove(config.eval_dir("mlp") / config.EVAL_TIMING)
    with pytest.raises(SystemExit) as exc:
        compare.main()
    assert exc.value.code == 1
    assert "timing.json not found: run `dvc repro evaluate@mlp` first" in caplog.text
    assert config.COMPARE_METRICS.read_bytes() == before

    # A replicate params asks for that never ran: the stage to run, nothing written.
    _model_folders("mlp", 0.98, 669_706, [0.96], run)
    shutil.rmtree(config.replicate_dir("mlp", 3))
    with pytest.raises(SystemExit) as exc:
        compare.main()
    assert exc.value.code == 1
    assert "run `dvc repro replicate@mlp-3` first" in caplog.text
    assert config.COMPARE_METRICS.read_bytes() == before


# --------------------------------------------------------------------------------------
# DVC reads the metrics file: `dvc metrics diff` between two commits
# --------------------------------------------------------------------------------------
def _run(cmd: list[str], cwd: Path) -> str:
    env = os.environ | {
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_dvc_metrics_diff(tmp_path):
    dvc = [sys.executable, "-m", "dvc"]
    _run(["git", "init", "-q"], tmp_path)
    _run([*dvc, "init", "-q"], tmp_path)
    (tmp_path / "dvc.yaml").write_text(f"metrics:\n  - {config.COMPARE_METRICS.as_posix()}\n")
    y = np.array([0, 1, 1, 0])
    good = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])

    def commit(proba: np.ndarray, message: str) -> None:
        entry = em.metrics_entry(em.classification_metrics(y, proba))
        cmp.write_metrics(tmp_path / config.COMPARE_METRICS, {"cnn": entry, "mlp": entry})
        _run(["git", "add", "-A"], tmp_path)
        _run(["git", "commit", "-q", "-m", message], tmp_path)

    commit(good, "first")
    commit(good[[0, 1, 2, 2]], "last image now wrong")  # accuracy 1.0 -> 0.75

    diff = json.loads(_run([*dvc, "metrics", "diff", "HEAD~1", "--json"], tmp_path))
    cnn = diff[config.COMPARE_METRICS.as_posix()]["cnn.test.accuracy"]
    assert cnn == {"old": 1.0, "new": 0.75, "diff": -0.25}
    assert "mlp.test.accuracy" in diff[config.COMPARE_METRICS.as_posix()]
