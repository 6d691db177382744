"""The MLflow record of real pipeline executions (slow): immutable runs, one parent run per
execution, no duplicate for what DVC restored, the registry's champion, a portable store, and
the champion served over real HTTP."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from intro_cnn import tracking
from intro_cnn.runtime.files import file_sha256
from tests.conftest import BASELINE_PARAMS, MODELS, ROOT, SUBSET, VENV_BIN, run


def store(repo: Path):
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    return client, client.get_experiment_by_name("intro-cnn").experiment_id


def artifact_digests(artifact_uri: str) -> dict[str, str]:
    root = Path(urlparse(artifact_uri).path)
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def snapshot(repo: Path) -> dict[str, dict]:
    """Everything a user can see of every run, read by a fresh process as a user would."""
    code = (
        "import json, sys; from pathlib import Path; "
        "from tests.project.test_tracking_pipeline import read_snapshot; "
        "print(json.dumps(read_snapshot(Path(sys.argv[1]))))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = run([sys.executable, "-c", code, str(repo)], repo, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def read_snapshot(repo: Path) -> dict[str, dict]:
    """Params, metric histories, tags, status and artifact digests of every run."""
    from mlflow.entities import ViewType

    client, exp_id = store(repo)
    out = {}
    for r in client.search_runs([exp_id], run_view_type=ViewType.ALL):
        rid = r.info.run_id
        out[rid] = {
            "name": r.info.run_name,
            "status": r.info.status,
            "end_time": r.info.end_time,
            "params": r.data.params,
            "tags": r.data.tags,
            "metrics": {
                k: [[m.step, m.value] for m in client.get_metric_history(rid, k)]
                for k in r.data.metrics
            },
            "artifacts": artifact_digests(r.info.artifact_uri),
        }
    return out


def parents(snap: dict[str, dict]) -> dict[str, dict]:
    return {k: v for k, v in snap.items() if v["tags"].get(tracking.ROLE_TAG) == "execution"}


def children(snap: dict[str, dict], parent_id: str) -> list[str]:
    return sorted(
        v["name"] for v in snap.values() if v["tags"].get(tracking.PARENT_TAG) == parent_id
    )


def new_runs(before: dict, after: dict) -> dict[str, dict]:
    for rid, seen in before.items():
        assert after[rid] == seen, f"run {seen['name']} ({rid}) changed"
    return {k: v for k, v in after.items() if k not in before}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_and_ask(repo: Path, env: dict[str, str], x: np.ndarray) -> list[int]:
    """`mlflow models serve` the cnn champion on a free local port; the digits it answers."""
    port = free_port()
    cmd = [str(VENV_BIN / "mlflow"), "models", "serve", "-m", "models:/intro-cnn-cnn@champion"]
    cmd += ["--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(
        cmd, cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        body = json.dumps({"inputs": x.tolist(), "params": {"pixels": "unit"}}).encode()
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, server.stderr.read()[-3000:]
            try:
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/invocations",
                    data=body,
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(req, timeout=30) as resp:
                    answer = json.loads(resp.read())
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "the model server did not answer in 180 s"
                time.sleep(1)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return np.argmax(np.asarray(answer["predictions"]), axis=1).tolist()


@pytest.mark.slow
@pytest.mark.pipeline
def test_record_survives_experiments_restores_and_a_move(trained_repo, tmp_path):
    repo = trained_repo

    # 1. The baseline (`dvc repro` after the "one epoch" commit, its results committed on top):
    # one parent run named after the commit, the four trainings and the three replicates (seed 2
    # of cnn_small, cnn_small_bn and mlp) its children.
    base = snapshot(repo)
    (parent_id, parent), *more = parents(base).items()
    replicates = [f"{m}-2" for m in BASELINE_PARAMS["replicates"]["models"]]
    assert not more and len(base) == 1 + len(MODELS) + len(replicates)
    commit = run(["git", "rev-parse", "HEAD~1"], repo).stdout.strip()
    assert run(["git", "log", "-1", "--format=%s", commit], repo).stdout.strip() == "one epoch"
    assert parent["name"] == f"repro@{commit[:8]}" and parent["status"] == "FINISHED"
    assert children(base, parent_id) == sorted([*MODELS, *replicates])
    replicate = next(v for v in base.values() if v["name"] == "mlp-2")
    assert replicate["tags"][tracking.REPLICATE_TAG] == "2"
    assert replicate["tags"][tracking.ROLE_TAG] == tracking.ROLE_REPLICATE
    assert replicate["params"]["seed"] == "2" and "test_accuracy" in replicate["metrics"]
    assert {"mlp/seeds/test_accuracy/mean", "mlp/seeds/test_accuracy/low", "mlp/seeds/n"} <= set(
        parent["metrics"]
    )
    for info in base.values():
        assert info["status"] == "FINISHED"
        assert info["tags"]["git_dirty"] == "false", "the pipeline's own writes are not dirt"
    assert any(k.startswith("figures/") for k in parent["artifacts"])
    assert {f"{m}/test_accuracy" for m in MODELS} <= set(parent["metrics"])
    cnn = next(v for v in base.values() if v["name"] == "cnn")
    assert len(cnn["metrics"]["val_accuracy"]) == 1 and "test_accuracy" in cnn["metrics"]
    assert not any(k.startswith("figures/") for k in cnn["artifacts"])
    run_info = json.loads((repo / "reports/train/cnn/run.json").read_text())
    assert run_info["parent_run_id"] == parent_id
    assert run_info["registered_model"] == "intro-cnn-cnn" and "model_version" not in run_info
    client, _ = store(repo)
    logged = client.get_logged_model(run_info["model_id"])
    assert logged.name == "cnn"
    test_metrics = {m.key: m.dataset_name for m in logged.metrics if m.key.startswith("test_")}
    assert test_metrics == dict.fromkeys(
        ("test_accuracy", "test_loss", "test_macro_f1"), "mnist-test"
    )
    inputs = {d.dataset.name: d for d in client.get_run(run_info["run_id"]).inputs.dataset_inputs}
    assert set(inputs) == {"mnist-train", "mnist-test"}
    train_input = inputs["mnist-train"]
    assert train_input.dataset.name == "mnist-train"
    assert (
        train_input.dataset.digest
        == hashlib.sha256((repo / "data/processed/mnist.npz").read_bytes()).hexdigest()[:32]
    )
    assert json.loads(train_input.dataset.source)["uri"] == str(SUBSET)
    # Nothing changed, nothing runs, nothing is logged.
    again = run(["dvc", "repro"], repo)
    assert "Running stage" not in again.stdout
    assert snapshot(repo) == base
    assert run(["git", "status", "--porcelain"], repo).stdout == ""

    # 2. Only the report language: a new parent with the English figures, no training.
    run(["dvc", "exp", "run", "--temp", "-n", "english", "-S", "report.lang=en"], repo)
    after_lang = snapshot(repo)
    added = new_runs(base, after_lang)
    ((_, lang),) = added.items()
    assert lang["name"] == "english" and lang["tags"]["dvc_exp_name"] == "english"
    assert lang["tags"][tracking.REUSED_TAG_PREFIX + "cnn"] == run_info["run_id"]
    assert any(k.startswith("figures/") for k in lang["artifacts"])
    assert lang["artifacts"] != parent["artifacts"]

    # 3. One model's epochs: one parent, its training and its replicate; the others reused.
    run(
        ["dvc", "exp", "run", "--temp", "-n", "two-epochs", "-S", "models.cnn_small.epochs=2"], repo
    )
    after_epochs = snapshot(repo)
    added = new_runs(after_lang, after_epochs)
    assert len(parents(added)) == 1 and len(added) == 3
    (epochs_parent,) = parents(added)
    assert children(added, epochs_parent) == ["cnn_small", "cnn_small-2"]
    small = next(v for v in added.values() if v["name"] == "cnn_small")
    assert small["params"]["epochs"] == "2" and small["tags"]["dvc_exp_name"] == "two-epochs"
    assert len(small["metrics"]["val_accuracy"]) == 2  # logged live, one per epoch
    assert added[epochs_parent]["tags"][tracking.REUSED_TAG_PREFIX + "cnn"] == run_info["run_id"]

    # 4. The same params in the workspace, then back to the baseline: DVC restores the
    # trainings from its run cache, so no training run is duplicated, and the restored outputs
    # name their runs. (Stages whose outputs DVC cannot restore rerun: one parent each time.)
    seen = after_epochs
    for epochs in (2, 1):
        run(["dvc", "exp", "run", "-S", f"models.cnn_small.epochs={epochs}"], repo)
        now = snapshot(repo)
        added = new_runs(seen, now)
        assert len(parents(added)) == len(added) <= 1, "a restored training logged a run"
        seen = now
    restored = json.loads((repo / "reports/train/cnn_small/run.json").read_text())
    assert restored["parent_run_id"] == parent_id
    run(["git", "checkout", "--", "params.yaml"], repo)

    # 5. No training registered anything; the gate registers the checked logged models and
    # crowns them. (This process opens the registry first here: the fixture's git tracks
    # mlflow.db, so the `dvc exp run --temp` above stashed and restored it as a new file.)
    assert client.search_model_versions() == [], "only the gate registers versions"
    run([sys.executable, "-m", "intro_cnn.commands.gate"], repo)
    registered = client.get_registered_model("intro-cnn-cnn")  # its page in the MLflow UI
    assert "61,482 parameters" in registered.description and "Conv2D →" in registered.description
    assert registered.tags[tracking.tags.PARAMETERS_TAG] == "61482"
    for model in MODELS:
        mv = client.get_model_version_by_alias(f"intro-cnn-{model}", "champion")
        assert (
            mv.source.removeprefix("models:/")
            == json.loads((repo / f"reports/train/{model}/run.json").read_text())["model_id"]
        )
        assert mv.tags[tracking.MODEL_FILE_TAG] == file_sha256(repo / f"models/{model}.keras")

    # 6. Move the repository: the store follows, the old folder is gone.
    moved = tmp_path / "elsewhere" / "project"
    shutil.move(repo, moved)
    run([sys.executable, "-m", "intro_cnn.commands.tracking"], moved)
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{moved / 'mlflow.db'}"
    with np.load(SUBSET) as data:
        x = data["x_test"][:20].astype(np.float32) / 255.0  # the normalised (N, 28, 28) tensor
        y = data["y_test"][:20]
    check = (
        "import json, sys, mlflow, numpy as np\n"
        "x = np.load(sys.argv[1])\n"
        "print(json.dumps({m: np.argmax(mlflow.pyfunc.load_model("
        "f'models:/intro-cnn-{m}@champion').predict(x, params={'pixels': 'unit'}), axis=1)"
        ".tolist() for m in sys.argv[2:]}))"
    )
    np.save(tmp_path / "x.npy", x)
    out = run([sys.executable, "-c", check, str(tmp_path / "x.npy"), *MODELS], moved, env=env)
    answers = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(answers) == set(MODELS)
    assert np.mean(np.array(answers["cnn"]) == y) >= 0.3  # one epoch on 900 images
    # ... and new runs write inside the new location.
    run([sys.executable, "-m", "stages.train", "mlp"], moved, env=env)
    client, exp_id = store(moved)
    newest = client.search_runs([exp_id], order_by=["attributes.start_time DESC"])[0]
    assert urlparse(newest.info.artifact_uri).path.startswith(str(moved / "mlartifacts"))

    # 7. The champion served over real HTTP answers the same digits.
    served = serve_and_ask(moved, env, x)
    assert served == answers["cnn"]
