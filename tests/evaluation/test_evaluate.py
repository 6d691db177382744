"""Tests of the evaluate stage: metrics on models whose answers are known, claims, MLflow, DVC."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from intro_cnn.config import ROOT
from intro_cnn.evaluation import evaluate as ev
from intro_cnn.evaluation import evaluate_mlflow
from intro_cnn.evaluation import metrics as em
from intro_cnn.evaluation.errors import EvaluationError
from intro_cnn.runtime import errors
from intro_cnn.runtime.files import read_json, write_json, write_npz
from stages import evaluate

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
    proba, images_per_s = em.timed_predict(constant_model(3), x, batch_size=64)
    assert images_per_s > 0
    assert (proba.argmax(axis=1) == 3).all()

    m = em.classification_metrics(y, proba)
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
    proba = em.predict_proba(constant_model(7), x, batch_size=50)
    keras_loss = keras.losses.CategoricalCrossentropy()(keras.utils.to_categorical(y, 10), proba)
    assert em.categorical_crossentropy(y, proba) == pytest.approx(float(keras_loss), rel=1e-5)


def test_predict_proba_rejects_logits(test_split):
    x, _ = test_split
    with pytest.raises(EvaluationError, match="softmax"):
        em.predict_proba(constant_model(3, softmax=False), x[:8], batch_size=8)


def test_predict_proba_is_keras_predict_batch_by_batch(test_split):
    import keras

    x, _ = test_split
    keras.utils.set_random_seed(3)
    inputs = keras.Input((28, 28, 1))
    hidden = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(hidden))
    # 200 images in batches of 64: the last batch holds 8.
    proba = em.predict_proba(model, x, batch_size=64)
    assert np.array_equal(proba, model.predict(x, batch_size=64, verbose=0))
    with pytest.raises(EvaluationError, match="No images"):
        em.predict_proba(model, x[:0], batch_size=64)


def test_predict_proba_logs_nothing_under_op_determinism():
    """Keras' NumPy input pipeline made TensorFlow log an E0000 line per replicate's test."""
    script = (
        "import numpy as np\n"
        "from intro_cnn.runtime import tf_import\n"
        "with tf_import.importing_tensorflow():\n"
        "    import keras, tensorflow as tf\n"
        "tf.config.experimental.enable_op_determinism()\n"
        "from intro_cnn.evaluation import metrics\n"
        "inputs = keras.Input((28, 28, 1))\n"
        "out = keras.layers.Dense(10, activation='softmax')(keras.layers.Flatten()(inputs))\n"
        "x = np.random.default_rng(0).random((300, 28, 28, 1), dtype=np.float32)\n"
        "print(metrics.predict_proba(keras.Model(inputs, out), x, 128).shape)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(300, 10)"
    assert done.stderr == "", done.stderr


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
    m = em.classification_metrics(y, proba)
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
    m = em.classification_metrics(y, proba)
    assert m["per_class"]["precision"] == [0.5, 0.0, 0.0]
    assert m["per_class"]["recall"] == [1.0, 0.0, 0.0]
    assert m["per_class"]["f1"] == pytest.approx([2 / 3, 0.0, 0.0])
    assert m["macro_precision"] == pytest.approx(0.5 / 3)
    # p(true) = 1 is clipped to 1 - 1e-7, p(true) = 0 to 1e-7.
    assert m["loss"] == pytest.approx(-(math.log(1 - 1e-7) + math.log(1e-7)) / 2)


def test_labels_out_of_range_are_rejected():
    with pytest.raises(EvaluationError, match="Labels must lie"):
        em.classification_metrics(np.array([0, 3]), np.full((2, 3), 1 / 3))


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
    wrong = em.most_confident_wrong(y, proba, n=10)
    assert [w["index"] for w in wrong] == [2, 3, 4, 0]
    assert wrong[0] == {"index": 2, "true": 2, "predicted": 0, "probability": 0.95}
    assert [w["probability"] for w in wrong] == [0.95, 0.8, 0.8, 0.7]
    assert [w["index"] for w in em.most_confident_wrong(y, proba, n=2)] == [2, 3]
    assert em.most_confident_wrong(y, proba, n=0) == []


def test_predictions_csv_feeds_the_confusion_template():
    text = em.predictions_csv(np.array([3, 1]), np.array([[0.1, 0.2, 0.3, 0.4], [0, 1, 0, 0]]))
    assert text == "actual,predicted\n3,3\n1,1\n"


# --------------------------------------------------------------------------------------
# MLflow
# --------------------------------------------------------------------------------------
@pytest.fixture
def mlflow_store(tmp_path, monkeypatch, new_store) -> str:
    uri = new_store(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # any default artifact root lands in tmp_path
    return uri


def test_layer_rows_of_a_real_model():
    from intro_cnn.models import build_model

    rows = ev.layer_rows(build_model("cnn_small"))
    row = {"name": "image", "type": "InputLayer", "output_shape": "28 × 28 × 1", "params": 0}
    assert rows[0] == row
    assert rows[1] == {
        "name": "conv1",
        "type": "Conv2D",
        "output_shape": "26 × 26 × 8",
        "params": 80,
    }
    assert rows[-1] == {"name": "output", "type": "Dense", "output_shape": "10", "params": 650}
    assert sum(r["params"] for r in rows) == 14178


def test_log_model_writes_this_execution_only(mlflow_store, tmp_path, test_split, caplog):
    """Test metrics go to the parent run; into a training run only when it is of this same
    execution; a run of an earlier execution is left exactly as it was, and linked."""
    from mlflow import MlflowClient

    from intro_cnn import tracking
    from intro_cnn.tracking.mlflow_store import tracking_uri

    x, y = test_split
    write_npz("data/processed/mnist.npz", {"x_test": x, "y_test": y.astype(np.uint8)})
    uri = tracking_uri()
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
    logged = {
        name: evaluate_mlflow.log_model(uri, "intro-cnn", info, metrics, [artifact], x, y)
        for name, info in infos.items()
    }
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
    assert {"evaluate/cnn", "evaluate/mlp", "evaluate/lost"} <= files_


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
    raw["replicates"] = {"models": [], "seeds": []}
    raw["evaluate"] = {"batch_size": 64, "n_wrong": 5}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    write_npz("data/processed/mnist.npz", {"x_test": x, "y_test": y.astype(np.uint8)})
    Path("models").mkdir()

    from mlflow import MlflowClient

    from intro_cnn import tracking

    client = MlflowClient(mlflow_store)
    execution = tracking.open_execution(client, mlflow_store, "intro-cnn")
    tags = tracking.child_run_tags(execution, "cnn")
    cnn_run = client.create_run(execution.experiment_id, run_name="cnn", tags=tags).info.run_id
    _fake_training("cnn", 1, cnn_run, [0.2, 0.3])  # class 1 is the most frequent: 28 of 200
    _fake_training("mlp", 8, "feedfacefeedface", [0.1])  # class 8 the rarest: 10 of 200

    for name in ("cnn", "mlp"):
        evaluate.main([name])

    for name, cls in (("cnn", 1), ("mlp", 8)):
        d = Path("reports/evaluate") / name
        metrics = read_json(d / "metrics.json")
        assert metrics["test"]["accuracy"] == pytest.approx(np.mean(y == cls))
        assert metrics["params"] == 7850
        assert set(metrics) == {"test", "params"}  # no timings among the metrics
        assert read_json(d / "timing.json")["inference_images_per_s"] > 0
        with open(d / "predictions.csv", newline="") as fh:
            preds = list(csv.DictReader(fh))
        assert len(preds) == len(y)
        assert [int(p["actual"]) for p in preds] == y.tolist()
        assert {p["predicted"] for p in preds} == {str(cls)}
        assert np.array(read_json(d / "confusion.json"))[:, cls].sum() == len(y)
        wrong = read_json(d / "wrong.json")
        assert len(wrong) == 5 and all(w["true"] != cls for w in wrong)
        assert read_json(d / "per_class.json")["per_class"][cls]["recall"] == 1.0
        inputs = read_json(d / "inputs.json")
        assert list(inputs["models"]) == [name] and list(inputs["params"]["models"]) == [name]
        layers = read_json(d / "layers.json")  # the report's summary table
        assert sum(r["params"] for r in layers) == 7850 and layers[-1]["output_shape"] == "10"

    runs = {
        name: read_json(Path("reports/evaluate") / name / "run.json") for name in ("cnn", "mlp")
    }
    assert runs["cnn"]["run_id"] == cnn_run and not runs["cnn"]["restored"]
    assert runs["mlp"]["restored"] and runs["mlp"]["run_id"] == "feedfacefeedface"
    assert client.get_run(cnn_run).data.metrics["test_accuracy"] == pytest.approx(0.14)
    parent = client.get_run(runs["mlp"]["parent_run_id"])
    assert parent.info.run_id == execution.parent_run_id == runs["cnn"]["parent_run_id"]
    assert parent.data.metrics["mlp/test_accuracy"] == pytest.approx(0.05)
    assert parent.data.tags[tracking.REUSED_TAG_PREFIX + "mlp"] == "feedfacefeedface"
    assert "feedfacefeedface of mlp is not in this store" in caplog.text
    # The test set is one input of the parent run, however many models were evaluated.
    assert [d.dataset.name for d in parent.inputs.dataset_inputs] == ["mnist-test"]

    # A model params.yaml does not list, or no model at all: a one-line error naming the fix.
    for argv, message in (
        (["lost"], "Unknown model 'lost' in params.yaml: valid names are ['cnn', 'mlp']"),
        ([], "usage: python -m stages.evaluate MODEL"),
    ):
        with pytest.raises(SystemExit) as exc:
            evaluate.main(argv)
        assert exc.value.code == errors.EXIT_CONFIG
        assert message in caplog.text

    # A missing input stops the stage with a one-line error naming the fix.
    os.remove("models/mlp.keras")
    with pytest.raises(SystemExit) as exc:
        evaluate.main(["mlp"])
    assert exc.value.code == 1
    assert "models/mlp.keras not found: run `dvc repro train@mlp` first" in caplog.text

    # An unreadable input is one line too, never a traceback.
    Path("reports/train/cnn/run.json").write_text("{")
    with pytest.raises(SystemExit) as exc:
        evaluate.main(["cnn"])
    assert exc.value.code == 1
    assert "evaluate failed: Expecting property name" in caplog.text
