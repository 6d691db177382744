"""Adding a model touches two files: a builder in stages/models.py and its entry in params.yaml.

The slow test adds a sixth network to a copy of the project, checks that git sees only those
two files changed, and runs the real pipeline (`dvc repro`, one epoch on the MNIST subset) to a
report, metrics, plots and figures that show it.
"""

from __future__ import annotations

import json

import pytest
import yaml

from stages import config
from tests.conftest import run, write_params

NEW = "tiny"
BUILDER = f'''

def {NEW}() -> keras.Model:
    """Flatten-Dense10: the smallest network that classifies MNIST (7,850 parameters)."""
    import keras
    from keras import layers

    inputs = keras.Input(INPUT_SHAPE, name="image")
    x = layers.Flatten(name="flatten")(inputs)
    return keras.Model(inputs, _output(x), name="{NEW}")
'''


def add_model(models_py: str) -> str:
    """stages/models.py with the new builder defined and registered."""
    registry = "\nMODEL_BUILDERS: dict"
    assert models_py.count(registry) == 1
    head, tail = models_py.split(registry)
    assert tail.count("\n}\n") >= 1
    tail = tail.replace("\n}\n", f'\n    "{NEW}": {NEW},\n}}\n', 1)
    return head.rstrip("\n") + "\n" + BUILDER + "\n" + registry + tail


@pytest.mark.slow
@pytest.mark.pipeline
def test_a_sixth_model_needs_a_builder_and_a_params_entry(repo):
    models_py = repo / "stages" / "models.py"
    models_py.write_text(add_model(models_py.read_text()))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    names = [*params["models"], NEW]
    write_params(
        repo,
        models={name: {**params["models"]["mlp"], "epochs": 1} for name in names},
        thresholds={
            "min": {NEW: {"test.accuracy": 0.5}},
            "max_drop": {NEW: {"test.accuracy": 0.01}},
        },
        report={"n_feature_images": 2, "dpi": 40},
    )
    changed = run(["git", "status", "--porcelain"], repo).stdout.split("\n")
    assert sorted(line[3:] for line in changed if line) == ["params.yaml", "stages/models.py"]

    out = run(["dvc", "repro"], repo).stdout
    for stage in (f"train@{NEW}", f"evaluate@{NEW}", "compare", "visualize", "report"):
        assert f"Running stage '{stage}'" in out

    metrics = json.loads((repo / config.COMPARE_METRICS).read_text())
    assert list(metrics) == names
    assert 0.1 < metrics[NEW]["test"]["accuracy"] <= 1.0
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)
    assert NEW in json.dumps(shown)
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
