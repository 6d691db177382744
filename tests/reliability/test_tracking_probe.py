"""A broken MLflow store is found in seconds, before any training, naming the URI and the fix."""

from __future__ import annotations

import socket
import sqlite3
import time
from pathlib import Path

import pytest

from intro_cnn import config
from intro_cnn.tracking import mlflow_store

from .conftest import listing, report, spawn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent_server():
    """A socket that accepts connections and never answers (a hung tracking server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


def test_good_sqlite_stores_pass(tmp_path: Path):
    mlflow_store.probe_store(f"sqlite:///{tmp_path / 'new.db'}")  # created on first use
    db = tmp_path / "existing.db"
    sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.commit()
    mlflow_store.probe_store(f"sqlite:///{db}")


@pytest.mark.parametrize("kind", ["corrupt file", "missing folder", "refused", "silent"])
def test_broken_store_is_named_with_the_fix(tmp_path: Path, kind: str, silent_server: str):
    if kind == "corrupt file":
        db = tmp_path / "mlflow.db"
        db.write_bytes(b"this is not a database" * 100)
        uri = f"sqlite:///{db}"
    elif kind == "missing folder":
        uri = f"sqlite:///{tmp_path / 'no' / 'such' / 'mlflow.db'}"
    elif kind == "refused":
        uri = f"http://127.0.0.1:{free_port()}"
    else:
        uri = silent_server
    start = time.perf_counter()
    with pytest.raises(mlflow_store.StoreUnavailable) as info:
        # Shorter waits than the stages' (3 tries, 2 s each): a silent server fails the same way.
        mlflow_store.probe_store(uri, attempts=2, timeout_s=0.5)
    seconds = time.perf_counter() - start
    print(f"\nprobe {kind}: {seconds:.2f} s: {info.value}")
    assert uri in str(info.value)
    assert "MLFLOW_TRACKING_URI" in str(info.value)


def test_train_fails_before_tensorflow_when_the_server_is_down(workdir: Path):
    """A server that is down stops the train stage before TensorFlow loads, in one line."""
    data = workdir / config.PROCESSED_MNIST  # train checks it exists, then probes
    data.parent.mkdir(parents=True)
    data.write_bytes(b"not read: the probe fails first")
    before = listing(workdir)
    uri = f"http://127.0.0.1:{free_port()}"
    outcome = spawn(["stages.train", "cnn"], workdir, MLFLOW_TRACKING_URI=uri)
    report("tracking server down (train)", outcome, "unchanged")
    assert outcome.code == 1 and "Traceback" not in outcome.stderr
    assert f"MLflow tracking store {uri} cannot be used" in outcome.stderr
    assert outcome.heavy == [], outcome.heavy
    assert listing(workdir) == before


def test_train_refuses_a_port_that_is_not_mlflow_before_tensorflow(
    workdir: Path, foreign_http: str
):
    """An HTTP answer below 500 that is not MLflow's fails the probe: the train stage stops
    before TensorFlow loads, in one line without a traceback."""
    data = workdir / config.PROCESSED_MNIST
    data.parent.mkdir(parents=True)
    data.write_bytes(b"not read: the probe fails first")
    outcome = spawn(["stages.train", "cnn"], workdir, MLFLOW_TRACKING_URI=foreign_http)
    report("a port that is not MLflow (train)", outcome, "unchanged")
    assert outcome.code == 1 and "Traceback" not in outcome.stderr
    assert "something answers there (HTTP 404), but not as an MLflow tracking server" in (
        outcome.stderr
    )
    assert outcome.heavy == [], outcome.heavy


@pytest.mark.parametrize("stage", ["evaluate", "compare", "visualize"])
def test_other_logging_stages_probe_first(workdir: Path, stage: str):
    db = workdir / "broken.db"
    db.write_bytes(b"garbage" * 1000)
    before = listing(workdir)
    argv = [f"stages.{stage}", *(["cnn"] if stage == "evaluate" else [])]
    outcome = spawn(argv, workdir, MLFLOW_TRACKING_URI=f"sqlite:///{db}")
    report(f"corrupt sqlite store ({stage})", outcome, "unchanged")
    assert outcome.code == 1 and "is not a usable SQLite database" in outcome.stderr
    assert outcome.heavy == [] and listing(workdir) == before
