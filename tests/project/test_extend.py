"""Adding a model touches two files: its architecture in intro_cnn/architectures/ and its entry in
params.yaml.

The slow test adds a sixth network to a copy of the trained subset project, checks that git
sees only those two files changed, and runs the real pipeline (`dvc repro`, one epoch on the
MNIST subset): only the new network trains and is evaluated, the four trained ones are left as
they were, and the report, metrics, plots and figures show all five.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from intro_cnn import config
from tests.conftest import run, write_params

NEW = "tiny"
ARCHITECTURE = f'''"""Flatten-Dense10, the smallest MNIST classifier (7,850 parameters)."""

import keras
from keras import layers

from intro_cnn.models import INPUT_SHAPE, output_layer


def build() -> keras.Model:
    inputs = keras.Input(INPUT_SHAPE, name="image")
    x = layers.Flatten(name="flatten")(inputs)
    return keras.Model(inputs, output_layer(x), name="{NEW}")
'''


@pytest.mark.slow
@pytest.mark.pipeline
def test_a_sixth_model_is_a_file_and_a_params_entry_and_trains_alone(trained_repo):
    repo = trained_repo
    (repo / "intro_cnn" / "architectures" / f"{NEW}.py").write_text(ARCHITECTURE)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    trained = list(params["models"])
    names = [*trained, NEW]
    write_params(
        repo,
        models={NEW: {**params["models"]["mlp"], "epochs": 1}},
        thresholds={
            "min": {NEW: {"test.accuracy": 0.5}},
            "max_drop": {NEW: {"test.accuracy": 0.01}},
        },
    )
    changed = run(["git", "status", "--porcelain"], repo).stdout.split("\n")
    assert sorted(line[3:] for line in changed if line) == [
        f"intro_cnn/architectures/{NEW}.py",
        "params.yaml",
    ]
    models_before = {name: (repo / config.model_path(name)).read_bytes() for name in trained}

    out = run(["dvc", "repro"], repo).stdout
    ran = set(re.findall(r"^Running stage '([^']+)'", out, flags=re.M))
    assert ran == {f"train@{NEW}", f"evaluate@{NEW}", "compare", "visualize", "report"}, out
    assert {name: (repo / config.model_path(name)).read_bytes() for name in trained} == (
        models_before
    )

    metrics = json.loads((repo / config.COMPARE_METRICS).read_text())
    assert list(metrics) == names
    assert 0.1 < metrics[NEW]["test"]["accuracy"] <= 1.0
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)
    assert NEW in json.dumps(shown)
    # Only what a run changes: no class counts of the data set crowd the table.
    assert "per_class" not in json.dumps(shown)
    assert str(config.PROCESSED_SUMMARY) not in json.dumps(shown)
    assert f"| {NEW} | 7,850 | 1 |" in (repo / config.COMPARISON_MD).read_text()

    # The overlaid training curves and the confusion plot of DVC include it.
    plots = json.loads(run(["dvc", "plots", "show", "--json"], repo).stdout)["data"]
    curves = plots["reports/figures/dvc_val_accuracy"][0]["content"]["data"]["values"]
    assert {row["model"] for row in curves} == set(names)
    assert f"reports/evaluate/{NEW}/predictions.csv" in plots

    # Its figures, and the report: comparison row, layer table, figures.
    index = json.loads((repo / config.NETWORK_DIR / config.FIGURES_INDEX).read_text())
    files = [f["file"] for f in index["figures"]]
    assert {f"history_{NEW}.png", f"confusion_{NEW}.png", f"wrong_{NEW}.png"} <= set(files)
    page = (repo / config.REPORT_HTML).read_text(encoding="utf-8")
    assert f"<caption>{NEW}: " in page  # its layer table
    assert f"<td><code>{NEW}</code></td>" in page  # its row of the comparison table
    assert page.count(f"{NEW}.png") == 0  # figures are inlined, not linked

    # And `dvc status` is clean: nothing left to run.
    assert "up to date" in run(["dvc", "status"], repo).stdout.lower()
