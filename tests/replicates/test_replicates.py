"""Replicate seeds end to end, on the trained subset project (seeds 1 and 2 of cnn_small,
cnn_small_bn and mlp; cnn alone): the DAG, the aggregates, the claims, the gate, and adding a
seed trains only that seed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from intro_cnn import config
from intro_cnn.replicates import outputs
from tests.conftest import BASELINE_PARAMS, run

REPLICATED = BASELINE_PARAMS["replicates"]["models"]


def gate(repo) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "intro_cnn.commands.gate"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
@pytest.mark.pipeline
def test_replicates_from_the_dag_to_the_gate(trained_repo):
    repo = trained_repo
    stages = run(["dvc", "stage", "list", "--name-only"], repo).stdout.split()
    assert sorted(s for s in stages if s.startswith("replicate@")) == sorted(
        f"replicate@{m}-2" for m in REPLICATED
    )
    for name in REPLICATED:
        assert (repo / config.replicate_model_path(name, 2)).is_file()
        folder = repo / config.replicate_dir(name, 2)
        assert json.loads((folder / config.REPLICATE_METRICS).read_text())["seed"] == 2
    assert sorted(p.name for p in (repo / config.MODELS_DIR).glob("*.keras")) == sorted(
        f"{m}.keras" for m in BASELINE_PARAMS["models"]
    )  # replicates never land beside the designated models

    metrics = json.loads((repo / config.COMPARE_METRICS).read_text())
    assert metrics["cnn"]["seeds"]["n"] == 1
    for name in REPLICATED:
        spread = metrics[name]["seeds"]
        assert (spread["n"], spread["seeds"]) == (2, [1, 2])
        each = spread["test_accuracy"]["per_seed"]
        assert each["1"] == metrics[name]["test"]["accuracy"]
        summary = spread["test_accuracy"]
        assert summary["low"] <= summary["mean"] <= summary["high"]

    claims = {c["id"]: c for c in json.loads((repo / config.COMPARE_CLAIMS).read_text())}
    bn = claims["batchnorm"]["intervals"]["higher test accuracy"]
    assert (bn["rule"], bn["seeds"]) == ("paired", [1, 2])
    cnn = claims["cnn_vs_mlp"]["intervals"]["better test accuracy"]
    assert (cnn["rule"], cnn["seeds"]) == ("one against sample", [1, 2])
    assert "95 % interval" in claims["batchnorm"]["reason"]

    passed = gate(repo)
    assert passed.returncode == 0, passed.stderr[-3000:]

    # A replicate's number edited by hand: refused, naming the seed; no alias moves.
    edited = json.loads((repo / config.COMPARE_METRICS).read_text())
    edited["mlp"]["seeds"]["test_accuracy"]["per_seed"]["2"] = 0.999
    (repo / config.COMPARE_METRICS).write_text(json.dumps(edited))
    refused = gate(repo)
    assert refused.returncode == 1
    assert "mlp seed 2: reports/compare/metrics.json says 0.999" in refused.stderr
    run(["git", "checkout", "--", str(config.COMPARE_METRICS)], repo)

    # A seed params does not ask for: refused before TensorFlow loads.
    stray = subprocess.run(
        [sys.executable, "-m", "stages.replicate", "mlp", "7"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert stray.returncode == 2 and "mlp seed 7 is not a replicate" in stray.stderr

    # One more seed: only that seed trains, the others come from the cache.
    out = run(["dvc", "exp", "run", "-S", "replicates.seeds=[2,3]"], repo).stdout
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    assert {f"replicate@{m}-3" for m in REPLICATED} <= ran
    assert not {s for s in ran if s.startswith("train@") or s.endswith("-2")}, ran
    grown = json.loads((repo / config.COMPARE_METRICS).read_text())
    assert grown["mlp"]["seeds"]["seeds"] == [1, 2, 3]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(repo)
        third = outputs.read_replicate("mlp", 3)  # the one reader of a replicate's files
    assert third.test_accuracy == grown["mlp"]["seeds"]["test_accuracy"]["per_seed"]["3"]
