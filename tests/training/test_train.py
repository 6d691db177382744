"""Stage train: history/metrics formats, and (slow) real one-epoch runs in a temporary repo."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from intro_cnn import config, tracking
from intro_cnn.runtime.files import file_sha256
from intro_cnn.tracking import train_mlflow
from intro_cnn.training import fitting, tf_settings, train_outputs
from intro_cnn.training.train_outputs import TrainResult
from tests.conftest import ROOT, VENV_BIN, run, train_until_epoch, write_params

ROWS = [
    {
        "epoch": 1,
        "accuracy": 0.9,
        "loss": 0.3,
        "val_accuracy": 0.95,
        "val_loss": 0.2,
        "seconds": 1.5,
    },
    {
        "epoch": 2,
        "accuracy": 0.97,
        "loss": 0.1,
        "val_accuracy": 0.98,
        "val_loss": 0.07,
        "seconds": 1.2,
    },
]


def test_history_csv_has_the_documented_columns():
    text = train_outputs.history_csv(ROWS)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[1]["val_accuracy"]) == 0.98


def test_metrics_summary_uses_the_last_epoch():
    result = TrainResult(ROWS, wall_seconds=3.0, samples_per_second=600.0, n_train=900, n_val=100)
    summary = train_outputs.metrics_summary(result, 14_178)
    assert summary["val"] == {"accuracy": 0.98, "loss": 0.07}
    assert summary["train"]["accuracy"] == 0.97
    assert summary["epochs"] == 2 and summary["params"] == 14_178
    assert set(summary) == {"train", "val", "epochs", "params", "n_train"}  # no wall clock
    timing = train_outputs.timing_summary(result)
    assert timing == {"wall_seconds": 3.0, "samples_per_second": 600.0, "epoch_seconds": [1.5, 1.2]}


def test_saved_model_bytes_depend_only_on_the_model(tmp_path):
    """Same weights, saved at different times: identical files (Keras alone stamps the date
    into metadata.json and the weights member, so its own saves differ)."""
    import zipfile

    import keras

    from intro_cnn.models import build_model

    keras.utils.set_random_seed(3)
    model = build_model("cnn_small")
    x = np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    model.fit(x, np.eye(10, dtype=np.float32)[np.arange(8)], epochs=1, verbose=0)
    saved, plain = [], []
    for i in range(2):
        if i:
            time.sleep(2.1)  # past the 1 s date resolution and the zip format's 2 s
        train_outputs.save_model(model, tmp_path / f"stable{i}.keras")
        saved.append((tmp_path / f"stable{i}.keras").read_bytes())
        model.save(tmp_path / f"plain{i}.keras")
        plain.append((tmp_path / f"plain{i}.keras").read_bytes())
    assert plain[0] != plain[1], "Keras' own saves became stable: save_model may be simplified"
    assert saved[0] == saved[1]
    with zipfile.ZipFile(tmp_path / "stable0.keras") as zf:
        assert json.loads(zf.read("metadata.json")) == {"keras_version": keras.__version__}
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    reloaded = keras.saving.load_model(tmp_path / "stable0.keras")
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_shared_object_ids_are_renumbered_by_first_appearance():
    config = {
        "layers": [
            {"policy": {"name": "mixed_bfloat16", "shared_object_id": 140456893956560}},
            {"policy": {"name": "mixed_bfloat16", "shared_object_id": 140456893956560}},
            {"init": {"seed": 1, "shared_object_id": 139921802155984}},
        ]
    }
    out = json.loads(train_outputs._numbered_shared_objects(json.dumps(config).encode()))
    keys = ("policy", "policy", "init")
    ids = [layer[k]["shared_object_id"] for layer, k in zip(out["layers"], keys, strict=True)]
    assert ids == [0, 0, 1]  # still shared where it was, now independent of memory addresses
    assert out["layers"][2]["init"]["seed"] == 1


def test_library_versions_are_the_installed_ones():
    import dvc
    import keras
    import mlflow
    import tensorflow as tf

    assert train_mlflow.library_versions() == {
        "versions.tensorflow": tf.__version__,
        "versions.keras": keras.__version__,
        "versions.mlflow": mlflow.__version__,
        "versions.dvc": dvc.__version__,
    }


def test_every_optimizer_the_schema_allows_compiles_and_others_are_refused():
    from intro_cnn.config import OPTIMIZERS, ModelConfig
    from intro_cnn.models import build_model

    with pytest.raises(ValueError, match="Input should be 'adam'"):
        ModelConfig(1, 128, "sgdd", 0.01, "categorical_crossentropy")
    for name in OPTIMIZERS:
        model = build_model("cnn_small")
        fitting.compile_model(model, ModelConfig(1, 128, name, 0.01, "categorical_crossentropy"), 1)
        assert type(model.optimizer).__name__.lower() == name


@pytest.mark.parametrize(
    ("flags", "gpus", "onednn", "native"),
    [
        ({"avx512f", "amx_bf16", "avx512_bf16"}, [], True, True),  # Sapphire Rapids and later
        ({"avx512f", "amx_bf16"}, [], False, False),  # oneDNN turned off: no fast bf16 kernels
        ({"avx2", "avx512_bf16"}, [], True, False),  # bf16 dot products only: not measured
        ({"avx2"}, [], True, False),  # most laptops
        ({"avx2"}, [(9, 0)], True, True),  # H100
        ({"amx_bf16"}, [(8, 0), (7, 0)], True, False),  # one V100 among the GPUs
    ],
)
def test_native_bfloat16_follows_the_hardware(flags, gpus, onednn, native):
    assert tf_settings.native_bfloat16(frozenset(flags), gpus, onednn) is native


@pytest.mark.parametrize(
    ("cap", "amx", "bf16"),
    [
        ("ALL", True, True),
        ("AVX2", False, False),
        ("AVX512_CORE", False, False),
        ("AVX512_CORE_BF16", False, True),
        ("AVX512_CORE_AMX", True, True),
    ],
)
def test_an_isa_cap_decides_which_kernels_remain(cap, amx, bf16):
    assert tf_settings.isa_cap_allows(cap, "AMX") is amx
    assert tf_settings.isa_cap_allows(cap, "BF16") is bf16


def test_auto_precision_is_float32_under_an_avx2_cap(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    assert tf_settings.onednn_isa_cap() == "AVX2"
    assert tf_settings.resolve_precision("auto") == "float32"


def test_explicit_precision_and_prefetch_are_kept():
    assert tf_settings.resolve_precision("float32") == "float32"
    assert tf_settings.resolve_precision("mixed_bfloat16") == "mixed_bfloat16"
    assert tf_settings.use_prefetch("none") is False
    assert tf_settings.use_prefetch("autotune") is True


def test_auto_prefetch_only_with_a_gpu():
    import tensorflow as tf

    assert tf_settings.use_prefetch("auto") is bool(tf.config.list_physical_devices("GPU"))


def _indexed_splits(n_train: int, n_val: int) -> dict:
    """Arrays whose pixel (0, 0) holds the row number, to follow rows through the pipeline."""

    def images(n: int) -> np.ndarray:
        x = np.zeros((n, 28, 28, 1), np.float32)
        x[:, 0, 0, 0] = np.arange(n)
        return x

    return {
        "x_train": images(n_train),
        "y_train": np.arange(n_train) % 10,
        "x_val": images(n_val),
        "y_val": np.arange(n_val) % 10,
    }


def _epoch_rows(ds) -> list[list[int]]:
    batches = []
    for xb, yb in ds:
        rows = xb.numpy()[:, 0, 0, 0].astype(int).tolist()
        assert (yb.numpy().argmax(axis=1) == np.array(rows) % 10).all()  # labels follow rows
        batches.append(rows)
    return batches


@pytest.mark.parametrize("prefetch", [False, True])
def test_input_datasets_shuffle_every_epoch_and_keep_validation_in_order(prefetch):
    data = _indexed_splits(300, 150)
    train_ds, val_ds = fitting.input_datasets(data, 128, seed=1, prefetch=prefetch)
    first, second = _epoch_rows(train_ds), _epoch_rows(train_ds)
    for epoch in (first, second):
        assert [len(b) for b in epoch] == [128, 128, 44]  # as fit(batch_size=128): last short
        assert sorted(r for b in epoch for r in b) == list(range(300))  # every row once per epoch
    assert first != second  # a fresh permutation each epoch
    again, _ = fitting.input_datasets(data, 128, seed=1, prefetch=prefetch)
    assert _epoch_rows(again) == first  # same seed, same order
    other, _ = fitting.input_datasets(data, 128, seed=2, prefetch=prefetch)
    assert _epoch_rows(other) != first
    assert _epoch_rows(val_ds) == [list(range(128)), list(range(128, 150))]
    # Without prefetch, no background threads: tf.data must not parallelize the gathers either.
    for ds in (train_ds, val_ds):
        parallel = ds.options().experimental_optimization.map_parallelization
        assert (parallel is False) is (not prefetch)


def test_unknown_model_exits_nonzero(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "stages.train", "resnet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "no model 'resnet'" in out.stderr and "valid names: cnn" in out.stderr


# ---------------------------------------------------------------------------- slow, real runs
ONE_EPOCH = {"models": {"cnn_small": {"epochs": 1}, "cnn_small_bn": {"epochs": 1}}}


def _prepare(repo: Path, **params) -> None:
    write_params(repo, **(params or ONE_EPOCH))
    run(["dvc", "repro", "preprocess"], repo)


@pytest.mark.slow
def test_one_epoch_training_through_dvc(repo):
    """Real stage code in a temporary repo: outputs, model reload, MLflow run with the model."""
    import keras
    import mlflow

    _prepare(repo)
    run(["dvc", "repro", "train@cnn_small"], repo)

    history = list(csv.DictReader((repo / "reports/train/cnn_small/history.csv").open()))
    assert len(history) == 1 and 0.0 < float(history[0]["val_accuracy"]) <= 1.0
    metrics = json.loads((repo / "reports/train/cnn_small/metrics.json").read_text())
    assert metrics["epochs"] == 1 and metrics["params"] == 14_178 and metrics["n_train"] == 900
    timing = json.loads((repo / "reports/train/cnn_small/timing.json").read_text())
    assert timing["samples_per_second"] > 0 and len(timing["epoch_seconds"]) == 1

    model = keras.saving.load_model(repo / "models/cnn_small.keras")
    assert model.count_params() == 14_178
    assert not list((repo / "models").glob(".*tmp*"))

    run_info = json.loads((repo / "reports/train/cnn_small/run.json").read_text())
    uri = f"sqlite:///{repo / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    mlrun = client.get_run(run_info["run_id"])
    assert mlrun.info.run_name == "cnn_small"
    assert mlrun.data.params["epochs"] == "1" and mlrun.data.params["batch_size"] == "128"
    assert mlrun.data.tags["model"] == "cnn_small" and len(mlrun.data.tags["data_sha256"]) == 64
    assert "git_commit" in mlrun.data.tags
    assert mlrun.data.tags["versions.keras"] == keras.__version__
    assert {"versions.tensorflow", "versions.mlflow", "versions.dvc"} <= set(mlrun.data.tags)
    steps = client.get_metric_history(run_info["run_id"], "val_accuracy")
    assert [m.step for m in steps] == [1]
    assert steps[0].value == pytest.approx(float(history[0]["val_accuracy"]), abs=1e-5)
    artifacts = {a.path for a in client.list_artifacts(run_info["run_id"])}
    assert {"model_summary.txt", "history.csv"} <= artifacts

    assert mlrun.info.status == "FINISHED"
    # _prepare edited params.yaml by hand, uncommitted: the user's own change.
    assert mlrun.data.tags["git_dirty"] == "true"
    parent = client.get_run(mlrun.data.tags["mlflow.parentRunId"])
    assert parent.info.run_id == run_info["parent_run_id"] and parent.info.status == "FINISHED"
    (dataset,) = mlrun.inputs.dataset_inputs
    assert dataset.dataset.name == "mnist-train"
    assert dataset.dataset.digest == mlrun.data.tags["data_sha256"][:32]
    # A training registers nothing (only the gate does); its logged model carries the digest
    # of the committed file and the card the gate writes onto the registered model.
    assert "model_version" not in run_info and client.search_model_versions() == []
    logged = client.get_logged_model(run_info["model_id"])
    assert logged.name == "cnn_small" and logged.source_run_id == run_info["run_id"]
    assert logged.tags[tracking.MODEL_FILE_TAG] == file_sha256(repo / "models/cnn_small.keras")
    assert logged.tags[tracking.tags.LAYERS_TAG].startswith("InputLayer → Conv2D")
    assert logged.tags[tracking.tags.PARAMETERS_TAG] == "14178"

    mlflow.set_tracking_uri(uri)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{run_info['model_id']}")
    # The served model (intro_cnn/tracking/serving.py): the normalised tensor, or raw 0-255 images.
    batch = np.zeros((3, 28, 28), dtype=np.float32)
    pred = np.asarray(pyfunc.predict(batch, params={"pixels": "unit"}))
    assert pred.shape == (3, 10)
    np.testing.assert_allclose(pred.sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(mlflow.exceptions.MlflowException, match="whole numbers 0-255"):
        pyfunc.predict(batch + 0.5)

    # Nothing changed → nothing reruns.
    out = run(["dvc", "repro", "train@cnn_small"], repo)
    assert "Running stage" not in out.stdout


@pytest.mark.slow
def test_two_runs_give_identical_history_and_metrics(repo):
    _prepare(repo)
    outputs = []
    for _ in range(2):
        run([sys.executable, "-m", "stages.train", "cnn_small_bn"], repo)
        outputs.append(
            [
                (repo / "reports/train/cnn_small_bn" / f).read_bytes()
                for f in ("history.csv", "metrics.json")
            ]
            + [(repo / "models/cnn_small_bn.keras").read_bytes()]
        )
    # Byte for byte: history and metrics hold no wall clock, the model file no save date.
    assert outputs[0] == outputs[1]


@pytest.mark.slow
def test_killed_training_leaves_no_model(repo):
    _prepare(repo, models={"cnn_small": {"epochs": 50}})
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    proc, _ = train_until_epoch(repo, "cnn_small", env)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # The hard kill left the run RUNNING; the next stage that opens the store marks it KILLED.
    import mlflow

    from intro_cnn import tracking

    uri = f"sqlite:///{repo / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    exp_id = client.get_experiment_by_name("intro-cnn").experiment_id
    (orphan,) = client.search_runs([exp_id], "attributes.run_name = 'cnn_small'")
    assert orphan.info.status == "RUNNING"
    assert client.get_metric_history(orphan.info.run_id, "val_accuracy")  # live progress
    tracking.open_execution(client, uri, "intro-cnn")
    orphan = client.get_run(orphan.info.run_id)
    assert orphan.info.status == "KILLED" and tracking.STALE_TAG in orphan.data.tags
    assert not (repo / "models/cnn_small.keras").exists()
    assert not list((repo / "models").glob("*")) if (repo / "models").exists() else True
    assert not (repo / "reports/train/cnn_small/metrics.json").exists()
    assert not (repo / "reports/train/cnn_small/run.json").exists()


@pytest.mark.slow
def test_temp_experiment_logs_into_the_main_store(repo):
    """`dvc exp run --temp` runs in .dvc/tmp/exps; its MLflow run must land in <repo>/mlflow.db."""
    import mlflow

    _prepare(repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "one epoch"], repo)
    out = run(["dvc", "exp", "run", "--temp", "train@cnn_small", "-S", "seed.seed=7"], repo)
    assert "Running stage 'train@cnn_small'" in out.stdout, out.stdout + out.stderr
    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    runs = client.search_runs(
        [client.get_experiment_by_name("intro-cnn").experiment_id],
        filter_string="attributes.run_name = 'cnn_small'",
    )
    assert [r.data.params["seed"] for r in runs] == ["7"]
    assert runs[0].data.tags.get("dvc_exp_name")
    assert not list((repo / ".dvc" / "tmp").rglob("mlflow.db"))


@pytest.mark.slow
def test_parallel_trainings_share_one_store(repo):
    """Two stages writing to one sqlite store at once (as `dvc queue start -j 2` does) both land."""
    import mlflow

    _prepare(repo)
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "stages.train", name],
            cwd=repo,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("cnn_small", "cnn_small_bn")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    exp = client.get_experiment_by_name("intro-cnn")
    runs = client.search_runs([exp.experiment_id], "tags.`intro_cnn.role` = 'training'")
    assert sorted(r.info.run_name for r in runs) == ["cnn_small", "cnn_small_bn"]
    for run_ in runs:
        assert run_.info.status == "FINISHED"
        assert len(client.get_metric_history(run_.info.run_id, "val_accuracy")) == 1
        assert {a.path for a in client.list_artifacts(run_.info.run_id)} >= {"history.csv"}


@pytest.mark.slow
def test_sigterm_ends_the_run_killed(repo):
    """`kill`, `dvc queue kill` or a CI timeout: the runs end KILLED, no model is written."""
    import mlflow

    _prepare(repo, models={"cnn_small": {"epochs": 50}})
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    proc, _ = train_until_epoch(repo, "cnn_small", env)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    exp_id = client.get_experiment_by_name("intro-cnn").experiment_id
    assert {r.info.status for r in client.search_runs([exp_id])} == {"KILLED"}
    assert not (repo / "models/cnn_small.keras").exists()


# ---------------------------------------------------------------------------- train.strategy
def test_strategy_must_be_a_known_name(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert params["train"]["strategy"] == "none"
    params["train"]["strategy"] = "multi_worker"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    expected = r"train\.strategy = 'multi_worker': input should be 'none' or 'mirrored'"
    with pytest.raises(config.ConfigError, match=expected):
        config.load_params(path)


def test_mirrored_scope_on_cpu_has_one_replica_and_trains():
    """MirroredStrategy on a machine without GPUs: one replica (the CPU); the model built and
    compiled in its scope holds mirrored variables and takes a training step."""
    import tensorflow as tf

    from intro_cnn.models import build_model

    with tf_settings.distribution_scope("none") as replicas:
        assert replicas == 1 and not tf.distribute.has_strategy()
    with tf_settings.distribution_scope("mirrored") as replicas:
        assert replicas == 1
        assert isinstance(tf.distribute.get_strategy(), tf.distribute.MirroredStrategy)
        model = build_model("cnn_small")
        cfg = config.ModelConfig(1, 8, "adam", 0.001, "categorical_crossentropy")
        fitting.compile_model(model, cfg, steps_per_execution=1)
        x = np.zeros((8, 28, 28, 1), np.float32)
        y = np.eye(10, dtype=np.float32)[np.arange(8) % 10]
        loss = model.train_on_batch(x, y)
    assert np.isfinite(np.asarray(loss)).all()
    assert not tf.distribute.has_strategy()
    with (
        pytest.raises(config.ConfigError, match="valid ones are"),
        tf_settings.distribution_scope("ps"),
    ):
        pass


@pytest.mark.slow
def test_mirrored_training_through_dvc_matches_its_params(repo):
    """train.strategy=mirrored runs the real stage on CPU (one replica) and says so in MLflow."""
    import mlflow

    _prepare(repo, train={"strategy": "mirrored"}, **ONE_EPOCH)
    out = run(["dvc", "repro", "train@cnn_small"], repo)
    assert "strategy mirrored (1 replica(s))" in out.stdout + out.stderr
    metrics = json.loads((repo / "reports/train/cnn_small/metrics.json").read_text())
    assert metrics["epochs"] == 1 and 0.0 < metrics["val"]["accuracy"] <= 1.0
    run_id = json.loads((repo / "reports/train/cnn_small/run.json").read_text())["run_id"]
    logged = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}").get_run(run_id).data.params
    assert logged["strategy"] == "mirrored" and logged["replicas"] == "1"
