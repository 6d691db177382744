"""Tests of the evaluate stage: metrics on models whose answers are known, claims, MLflow, DVC."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import yaml

from stages import claims, config
from stages import evaluate as ev
from stages.config import ROOT
from stages.files import read_json, write_json, write_npz

BIAS = 5.0  # logit of the favoured class; the other nine get 0


@pytest.fixture(scope="module")
def test_split(subset) -> tuple[np.ndarray, np.ndarray]:
    """The subset's 200 real test images, preprocessed as the pipeline does."""
    x = (subset["x_test"].astype(np.float32) / 255.0)[..., None]
    return x, subset["y_test"].astype(np.int64)


def constant_model(cls: int, name: str = "const", softmax: bool = True):
    """A model that ignores its input: zero kernel, bias favouring ``cls``."""
    import keras

    bias = np.zeros(10, dtype=np.float32)
    bias[cls] = BIAS
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Flatten()(inputs)
    out = keras.layers.Dense(
        10,
        activation="softmax" if softmax else None,
        kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant(bias),
    )(x)
    return keras.Model(inputs, out, name=name)


# --------------------------------------------------------------------------------------
# Metrics on a model whose answers are known
# --------------------------------------------------------------------------------------
def test_constant_model_metrics(test_split):
    x, y = test_split
    proba, images_per_s = ev.timed_predict(constant_model(3), x, batch_size=64)
    assert images_per_s > 0
    assert (proba.argmax(axis=1) == 3).all()

    m = ev.classification_metrics(y, proba)
    frac = float(np.mean(y == 3))
    counts = np.bincount(y, minlength=10)
    assert 0 < frac < 1
    assert m["accuracy"] == pytest.approx(frac)

    cm = np.array(m["confusion"])
    assert cm.shape == (10, 10)
    assert (cm[:, 3] == counts).all()  # every row's images all land in column 3
    assert cm.sum() == len(y) and np.delete(cm, 3, axis=1).sum() == 0

    pc = m["per_class"]
    assert pc["precision"][3] == pytest.approx(frac)
    assert pc["recall"][3] == 1.0
    assert pc["f1"][3] == pytest.approx(2 * frac / (1 + frac))
    others = [c for c in range(10) if c != 3]
    for key in ("precision", "recall", "f1"):
        assert [pc[key][c] for c in others] == [0.0] * 9
    assert pc["support"] == counts.tolist()
    assert m["macro_f1"] == pytest.approx(2 * frac / (1 + frac) / 10)
    assert m["macro_recall"] == pytest.approx(0.1)

    # Softmax of (5, 0, ..., 0): p = e^5 / (e^5 + 9) for class 3, 1 / (e^5 + 9) for the rest.
    z = math.exp(BIAS) + 9
    expected = -(frac * math.log(math.exp(BIAS) / z) + (1 - frac) * math.log(1 / z))
    assert m["loss"] == pytest.approx(expected, rel=1e-5)


def test_loss_matches_keras(test_split):
    import keras

    x, y = test_split
    proba = ev.predict_proba(constant_model(7), x, batch_size=50)
    keras_loss = keras.losses.CategoricalCrossentropy()(keras.utils.to_categorical(y, 10), proba)
    assert ev.categorical_crossentropy(y, proba) == pytest.approx(float(keras_loss), rel=1e-5)


def test_predict_proba_rejects_logits(test_split):
    x, _ = test_split
    with pytest.raises(ev.EvaluationError, match="softmax"):
        ev.predict_proba(constant_model(3, softmax=False), x[:8], batch_size=8)


def test_classification_metrics_by_hand():
    y = np.array([0, 1, 2, 2])
    proba = np.array(
        [
            [0.7, 0.2, 0.1],
            [0.1, 0.8, 0.1],
            [0.2, 0.2, 0.6],
            [0.5, 0.3, 0.2],  # a 2 taken for a 0
        ]
    )
    m = ev.classification_metrics(y, proba)
    assert m["accuracy"] == 0.75
    assert m["loss"] == pytest.approx(-(math.log(0.7 * 0.8 * 0.6 * 0.2)) / 4)
    assert m["confusion"] == [[1, 0, 0], [0, 1, 0], [1, 0, 1]]
    assert m["per_class"]["precision"] == pytest.approx([0.5, 1.0, 1.0])
    assert m["per_class"]["recall"] == pytest.approx([1.0, 1.0, 0.5])
    assert m["per_class"]["f1"] == pytest.approx([2 / 3, 1.0, 2 / 3])
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 + 2 / 3) / 3)


def test_undefined_ratios_are_zero_and_loss_is_clipped():
    # Class 2 never occurs and is never predicted; class 1 occurs but is never predicted.
    y = np.array([0, 1])
    proba = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    m = ev.classification_metrics(y, proba)
    assert m["per_class"]["precision"] == [0.5, 0.0, 0.0]
    assert m["per_class"]["recall"] == [1.0, 0.0, 0.0]
    assert m["per_class"]["f1"] == pytest.approx([2 / 3, 0.0, 0.0])
    assert m["macro_precision"] == pytest.approx(0.5 / 3)
    # p(true) = 1 is clipped to 1 - 1e-7, p(true) = 0 to 1e-7.
    assert m["loss"] == pytest.approx(-(math.log(1 - 1e-7) + math.log(1e-7)) / 2)


def test_labels_out_of_range_are_rejected():
    with pytest.raises(ev.EvaluationError, match="Labels must lie"):
        ev.classification_metrics(np.array([0, 3]), np.full((2, 3), 1 / 3))


def test_most_confident_wrong_order():
    y = np.array([0, 1, 2, 0, 1])
    proba = np.array(
        [
            [0.2, 0.7, 0.1],  # wrong, 0.7
            [0.1, 0.9, 0.0],  # right
            [0.95, 0.05, 0.0],  # wrong, 0.95
            [0.1, 0.1, 0.8],  # wrong, 0.8
            [0.1, 0.1, 0.8],  # wrong, 0.8 (tie: keeps test-set order)
        ]
    )
    wrong = ev.most_confident_wrong(y, proba, n=10)
    assert [w["index"] for w in wrong] == [2, 3, 4, 0]
    assert wrong[0] == {"index": 2, "true": 2, "predicted": 0, "probability": 0.95}
    assert [w["probability"] for w in wrong] == [0.95, 0.8, 0.8, 0.7]
    assert [w["index"] for w in ev.most_confident_wrong(y, proba, n=2)] == [2, 3]
    assert ev.most_confident_wrong(y, proba, n=0) == []


def test_predictions_csv_feeds_the_confusion_template():
    text = ev.predictions_csv(np.array([3, 1]), np.array([[0.1, 0.2, 0.3, 0.4], [0, 1, 0, 0]]))
    assert text == "actual,predicted\n3,3\n1,1\n"


# --------------------------------------------------------------------------------------
# Claims
# --------------------------------------------------------------------------------------
def row(model: str, params: int, val: float, test: float) -> ev.ComparisonRow:
    return ev.ComparisonRow(model, params, 10, 60.0, 9000.0, val, test, 0.05, 20000.0)


def claims_for(rows, histories=None) -> dict[str, claims.Claim]:
    return {c.id: c for c in ev.judge_claims(rows, histories or {})}


def test_cnn_vs_mlp_verdicts():
    holds = claims_for([row("cnn", 61_482, 0.99, 0.991), row("mlp", 669_706, 0.98, 0.982)])
    c = holds["cnn_vs_mlp"]
    assert c.verdict == claims.HOLDS
    assert "0.9910" in c.reason and "0.9820" in c.reason
    assert "61\u202f482" in c.reason and "669\u202f706" in c.reason and "9.2%" in c.reason
    assert c.statement == claims.statement("cnn_vs_mlp", "en")

    partly = claims_for([row("cnn", 61_482, 0.98, 0.975), row("mlp", 669_706, 0.98, 0.982)])
    c = partly["cnn_vs_mlp"]
    assert c.verdict == claims.PARTLY
    assert c.parts == {"better test accuracy": False, "far fewer parameters": True}
    assert c.reason.endswith(
        "Holds: far fewer parameters (less than half). Does not hold: better test accuracy."
    )

    # Exactly half is not "less than half"; equal accuracy is not "better".
    no = claims_for([row("cnn", 500, 0.98, 0.98), row("mlp", 1000, 0.98, 0.98)])
    assert no["cnn_vs_mlp"].verdict == claims.DOES_NOT_HOLD

    missing = claims_for([row("cnn", 500, 0.98, 0.99)])
    assert missing["cnn_vs_mlp"].verdict == claims.NOT_CHECKED
    assert missing["cnn_vs_mlp"].missing == ["mlp"]
    assert "Model(s) mlp not in params.yaml" in missing["cnn_vs_mlp"].reason


def test_batchnorm_verdicts():
    plain, bn = "cnn_small", "cnn_small_bn"
    fast = {bn: [0.97, 0.98, 0.985, 0.99], plain: [0.93, 0.96, 0.975, 0.98]}
    slow = {bn: [0.90, 0.95, 0.96], plain: [0.93, 0.96, 0.975]}

    c = claims_for([row(plain, 14_178, 0.985, 0.984), row(bn, 14_242, 0.989, 0.988)], fast)
    assert c["batchnorm"].verdict == claims.HOLDS
    assert c["batchnorm"].evidence["cnn_small_bn_early_val_accuracy"] == pytest.approx(2.935 / 3)
    assert c["batchnorm"].evidence["early_epochs"] == 3

    c = claims_for([row(plain, 14_178, 0.985, 0.989), row(bn, 14_242, 0.989, 0.988)], fast)
    assert c["batchnorm"].verdict == claims.PARTLY
    assert c["batchnorm"].parts["higher test accuracy"] is False
    assert c["batchnorm"].reason.endswith(
        "Holds: higher validation accuracy; faster rise in the first epochs. "
        "Does not hold: higher test accuracy."
    )

    c = claims_for([row(plain, 14_178, 0.99, 0.99), row(bn, 14_242, 0.98, 0.98)], slow)
    assert c["batchnorm"].verdict == claims.DOES_NOT_HOLD

    # Without histories the early-rise part is not checked; the rest still decides.
    c = claims_for([row(plain, 14_178, 0.985, 0.984), row(bn, 14_242, 0.989, 0.988)])
    assert c["batchnorm"].verdict == claims.HOLDS
    assert c["batchnorm"].parts["faster early rise"] is None
    assert "not checked" in c["batchnorm"].reason

    c = claims_for([row(plain, 14_178, 0.985, 0.984)])
    assert c["batchnorm"].verdict == claims.NOT_CHECKED


def test_comparison_outputs():
    rows = [row("cnn", 61_482, 0.99, 0.991), row("mlp", 669_706, 0.98, 0.982)]
    judged = ev.judge_claims(rows, {})
    md = ev.comparison_markdown(rows, judged)
    assert "| cnn | 61,482 | 10 | 60.0 | 9,000 | 0.9900 | 0.9910 | 0.0500 | 20,000 |" in md
    assert "Verdict: **holds**" in md and "Verdict: **not checked**" in md
    parsed = list(csv.DictReader(ev.comparison_csv(rows).splitlines()))
    assert parsed[1]["model"] == "mlp" and float(parsed[1]["test_accuracy"]) == 0.982
    as_json = json.loads(json.dumps(ev.claims_json(judged)))
    assert [c["verdict"] for c in as_json] == ["holds", "not checked"]
    # claims.json is the shared schema the report reads back.
    assert [claims.Claim.from_json(c) for c in as_json] == [
        claims.Claim.from_json(asdict(c)) for c in judged
    ]


# --------------------------------------------------------------------------------------
# MLflow
# --------------------------------------------------------------------------------------
@pytest.fixture
def mlflow_store(tmp_path, monkeypatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # any default artifact root lands in tmp_path
    return uri


def test_log_stage_writes_this_execution_only(mlflow_store, tmp_path, test_split, caplog):
    """Test metrics go to the parent run; into a training run only when it is of this same
    execution; a run of an earlier execution is left exactly as it was, and linked."""
    from mlflow import MlflowClient

    from stages import tracking

    x, y = test_split
    write_npz("data/processed/mnist.npz", {"x_test": x, "y_test": y.astype(np.uint8)})
    uri = tracking.tracking_uri()
    assert uri == mlflow_store
    client = MlflowClient(uri)
    execution = tracking.open_execution(client, uri, "intro-cnn")
    exp_id = execution.experiment_id
    tags = tracking.child_run_tags(execution, "cnn")
    ours = client.create_run(exp_id, run_name="cnn", tags=tags).info.run_id
    client.set_terminated(ours)
    earlier = client.create_run(exp_id, run_name="mlp", tags={tracking.EXECUTION_TAG: "old"})
    earlier_id = earlier.info.run_id
    client.log_metric(earlier_id, "val_accuracy", 0.5)
    client.set_terminated(earlier_id)
    before = client.get_run(earlier_id)
    artifact = tmp_path / "confusion.json"
    write_json(artifact, [[1, 0], [0, 1]])
    metrics = {"test_accuracy": 0.99, "test_loss": 0.03, "test_macro_f1": 0.989}
    infos = {
        "cnn": {"run_id": ours, "experiment": "intro-cnn", "model": "cnn"},
        "mlp": {"run_id": earlier_id, "experiment": "intro-cnn", "model": "mlp"},
        "lost": {"run_id": "0123456789abcdef", "experiment": "intro-cnn", "model": "lost"},
    }
    logged = ev.log_stage(
        uri,
        "intro-cnn",
        infos,
        dict.fromkeys(infos, metrics),
        {key: [artifact] for key in infos},
        [artifact],
        x,
        y,
    )
    parent = execution.parent_run_id
    assert {m: (r.restored, r.parent_run_id) for m, r in logged.items()} == {
        "cnn": (False, parent),
        "mlp": (True, parent),
        "lost": (True, parent),
    }
    assert client.get_run(ours).data.metrics == metrics
    after = client.get_run(earlier_id)
    assert after.data.to_dictionary() == before.data.to_dictionary()
    assert after.info.end_time == before.info.end_time
    p = client.get_run(parent)
    assert p.data.metrics["mlp/test_accuracy"] == 0.99 and p.info.status == "FINISHED"
    assert p.data.tags[tracking.REUSED_TAG_PREFIX + "mlp"] == earlier_id
    assert tracking.REUSED_TAG_PREFIX + "cnn" not in p.data.tags
    assert "0123456789abcdef of lost is not in this store" in caplog.text
    assert [d.dataset.name for d in p.inputs.dataset_inputs] == ["mnist-test"]
    files_ = {a.path for a in client.list_artifacts(parent, "evaluate")}
    assert {"evaluate/cnn", "evaluate/confusion.json"} <= files_


# --------------------------------------------------------------------------------------
# The stage end to end, on tiny saved models and the real test subset
# --------------------------------------------------------------------------------------
def _fake_training(name: str, cls: int, run_id: str, val: list[float]) -> None:
    """What `dvc repro train@name` leaves behind, for a model that always answers ``cls``."""
    constant_model(cls, name).save(f"models/{name}.keras")
    d = Path("reports/train") / name
    write_json(
        d / "metrics.json",
        {
            "train": {"accuracy": 0.5, "loss": 1.0},
            "val": {"accuracy": val[-1], "loss": 1.0},
            "epochs": len(val),
            "params": 7850,
        },
    )
    write_json(d / "timing.json", {"wall_seconds": 12.5, "samples_per_second": 4000.0})
    lines = ["epoch,accuracy,loss,val_accuracy,val_loss"]
    lines += [f"{i},0.5,1.0,{v},1.0" for i, v in enumerate(val, 1)]
    (d / "history.csv").write_text("\n".join(lines) + "\n")
    write_json(d / "run.json", {"run_id": run_id, "experiment": "intro-cnn", "model": name})


def test_stage_end_to_end(mlflow_store, tmp_path, test_split, caplog):
    x, y = test_split
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["models"] = {m: raw["models"][m] for m in ("cnn", "mlp")}
    raw["evaluate"] = {"batch_size": 64, "n_wrong": 5}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    write_npz("data/processed/mnist.npz", {"x_test": x, "y_test": y.astype(np.uint8)})
    Path("models").mkdir()

    from mlflow import MlflowClient

    from stages import tracking

    client = MlflowClient(mlflow_store)
    execution = tracking.open_execution(client, mlflow_store, "intro-cnn")
    tags = tracking.child_run_tags(execution, "cnn")
    cnn_run = client.create_run(execution.experiment_id, run_name="cnn", tags=tags).info.run_id
    _fake_training("cnn", 1, cnn_run, [0.2, 0.3])  # class 1 is the most frequent: 28 of 200
    _fake_training("mlp", 8, "feedfacefeedface", [0.1])  # class 8 the rarest: 10 of 200

    ev.main()

    metrics = read_json("reports/evaluate/metrics.json")
    assert set(metrics) == {"cnn", "mlp"}
    assert metrics["cnn"]["test"]["accuracy"] == pytest.approx(np.mean(y == 1))
    assert metrics["mlp"]["test"]["accuracy"] == pytest.approx(np.mean(y == 8))
    assert metrics["cnn"] == {"test": metrics["cnn"]["test"]}  # no timings among the metrics
    assert read_json("reports/evaluate/timing.json")["cnn"]["inference_images_per_s"] > 0

    for name, cls in (("cnn", 1), ("mlp", 8)):
        d = Path("reports/evaluate") / name
        with open(d / "predictions.csv", newline="") as fh:
            preds = list(csv.DictReader(fh))
        assert len(preds) == len(y)
        assert [int(p["actual"]) for p in preds] == y.tolist()
        assert {p["predicted"] for p in preds} == {str(cls)}
        assert np.array(read_json(d / "confusion.json"))[:, cls].sum() == len(y)
        wrong = read_json(d / "wrong.json")
        assert len(wrong) == 5 and all(w["true"] != cls for w in wrong)
        assert read_json(d / "per_class.json")["per_class"][cls]["recall"] == 1.0

    claims = {c["id"]: c for c in read_json("reports/evaluate/claims.json")}
    # Both models have 7,850 parameters (not less than half) but the "cnn" scores higher.
    assert claims["cnn_vs_mlp"]["verdict"] == "partly holds"
    assert claims["batchnorm"]["verdict"] == "not checked"
    md = Path("reports/comparison.md").read_text()
    assert "| cnn | 7,850 | 2 | 12.5 | 4,000 | 0.3000 | 0.1400 |" in md
    assert "partly holds" in md
    assert Path("reports/comparison.csv").read_text().startswith("model,params,epochs,")

    runs = read_json("reports/evaluate/runs.json")
    assert runs["cnn"]["run_id"] == cnn_run and not runs["cnn"]["restored"]
    assert runs["mlp"]["restored"] and runs["mlp"]["run_id"] == "feedfacefeedface"
    assert client.get_run(cnn_run).data.metrics["test_accuracy"] == pytest.approx(0.14)
    parent = client.get_run(runs["mlp"]["parent_run_id"])
    assert parent.info.run_id == execution.parent_run_id == runs["cnn"]["parent_run_id"]
    assert parent.data.metrics["mlp/test_accuracy"] == pytest.approx(0.05)
    assert parent.data.tags[tracking.REUSED_TAG_PREFIX + "mlp"] == "feedfacefeedface"
    assert "feedfacefeedface of mlp is not in this store" in caplog.text

    # A missing input stops the stage with a one-line error naming the fix.
    os.remove("models/mlp.keras")
    with pytest.raises(SystemExit) as exc:
        ev.main()
    assert exc.value.code == 1
    assert "models/mlp.keras not found: run `dvc repro train@mlp` first" in caplog.text


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
    (tmp_path / "dvc.yaml").write_text(f"metrics:\n  - {config.EVAL_METRICS.as_posix()}\n")
    y = np.array([0, 1, 1, 0])
    good = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])

    def commit(proba: np.ndarray, message: str) -> None:
        entry = ev.metrics_entry(ev.classification_metrics(y, proba))
        ev.write_metrics(tmp_path / config.EVAL_METRICS, {"cnn": entry, "mlp": entry})
        _run(["git", "add", "-A"], tmp_path)
        _run(["git", "commit", "-q", "-m", message], tmp_path)

    commit(good, "first")
    commit(good[[0, 1, 2, 2]], "last image now wrong")  # accuracy 1.0 -> 0.75

    diff = json.loads(_run([*dvc, "metrics", "diff", "HEAD~1", "--json"], tmp_path))
    cnn = diff[config.EVAL_METRICS.as_posix()]["cnn.test.accuracy"]
    assert cnn == {"old": 1.0, "new": 0.75, "diff": -0.25}
    assert "mlp.test.accuracy" in diff[config.EVAL_METRICS.as_posix()]
