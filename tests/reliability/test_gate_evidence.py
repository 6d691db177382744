"""The gate moves @champion only on numbers it measured itself from the model files, and only
to logged models that are those files: hand-edited metrics, run.json files or logged models
are refused (exit 1), register nothing and move no alias."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from intro_cnn import config, tracking
from tests.conftest import MODELS, run


def gate(repo: Path):
    return run([sys.executable, "-m", "intro_cnn.commands.gate"], repo, check=False)


def champions(repo: Path) -> dict[str, str | None]:
    """The logged model each ``@champion`` was registered from (None: no champion)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    found: dict[str, str | None] = {}
    for model in MODELS:
        try:
            mv = client.get_model_version_by_alias(
                tracking.registered_model_name(model), "champion"
            )
            found[model] = mv.source.removeprefix("models:/")
        except MlflowException:
            found[model] = None
    return found


def versions(repo: Path) -> list:
    from mlflow import MlflowClient

    return MlflowClient(f"sqlite:///{repo / 'mlflow.db'}").search_model_versions()


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


@pytest.mark.slow
@pytest.mark.pipeline
def test_hand_edited_metrics_are_refused_whichever_file_was_edited(trained_repo: Path):
    nobody = dict.fromkeys(MODELS)
    assert champions(trained_repo) == nobody

    # 1. The gated file itself.
    metrics = trained_repo / config.COMPARE_METRICS
    edit_json(metrics, lambda m: m["cnn"]["test"].update(accuracy=0.9999))
    out = gate(trained_repo)
    assert out.returncode == 1, out.stderr
    assert "cnn.test.accuracy: reports/compare/metrics.json says 0.9999, models/cnn.keras " in (
        out.stderr
    )
    assert "is not what the pipeline measured on these models" in out.stderr
    assert "checks passed" not in out.stderr and "Traceback" not in out.stderr
    assert champions(trained_repo) == nobody
    run(["git", "checkout", "--", str(config.COMPARE_METRICS)], trained_repo)

    # 2. An evaluation's own file, gathered by a real compare run: the same refusal.
    edit_json(
        trained_repo / config.eval_dir("mlp") / "metrics.json",
        lambda m: m["test"].update(accuracy=0.5),
    )
    run([sys.executable, "-m", "stages.compare"], trained_repo)
    assert json.loads(metrics.read_text())["mlp"]["test"]["accuracy"] == 0.5
    out = gate(trained_repo)
    assert (
        out.returncode == 1
        and "mlp.test.accuracy: reports/compare/metrics.json says 0.5000" in (out.stderr)
    )
    assert champions(trained_repo) == nobody

    # 3. What dvc repro rebuilds passes, re-measured, and crowns the versions it checked.
    run(["dvc", "repro"], trained_repo)
    out = gate(trained_repo)
    assert out.returncode == 0, out.stderr
    assert "checks passed (re-measured from the model files)" in out.stderr
    recorded = {
        m: json.loads((trained_repo / config.run_info_path(m)).read_text())["model_id"]
        for m in MODELS
    }
    assert champions(trained_repo) == recorded
    assert len(versions(trained_repo)) == len(MODELS)
    # Passing again registers nothing new: each logged model keeps its one version.
    assert gate(trained_repo).returncode == 0
    assert champions(trained_repo) == recorded and len(versions(trained_repo)) == len(MODELS)


@pytest.mark.slow
@pytest.mark.pipeline
def test_a_run_json_naming_another_logged_model_moves_no_alias(trained_repo: Path):
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{trained_repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("intro-cnn").experiment_id
    other = client.create_logged_model(experiment, name="cnn").model_id
    run_json = trained_repo / config.run_info_path("cnn")
    edit_json(run_json, lambda r: r.update(model_id=other))

    out = gate(trained_repo)
    assert out.returncode == 1, out.stderr
    assert f"logged model {other} (cnn) records no model-file digest" in out.stderr
    assert "no alias was moved" in out.stderr
    assert champions(trained_repo) == dict.fromkeys(MODELS) and versions(trained_repo) == []

    client.set_logged_model_tags(other, {tracking.MODEL_FILE_TAG: "0" * 64})
    out = gate(trained_repo)
    assert out.returncode == 1
    assert f"logged model {other} (cnn) was logged from another file than models/cnn.keras" in (
        out.stderr
    )
    assert champions(trained_repo) == dict.fromkeys(MODELS) and versions(trained_repo) == []
