"""The shared fixtures' own guarantees: a trained project built once for all test workers, and
new MLflow stores copied from one template that behave as new stores."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, build_once

# Two processes at once, as two pytest-xdist workers: each appends a line to builds.log when
# it builds (slowly), then lists what it found.
WORKER = """
import sys, time
from pathlib import Path
from tests.conftest import build_once

def build(dst: Path) -> None:
    with open(dst.parent / "builds.log", "a") as log:
        log.write("built\\n")
    dst.mkdir()
    time.sleep(1.0)
    (dst / "result").write_text("complete")

dst = build_once(Path(sys.argv[1]), build)
print((dst / "result").read_text())
"""


def test_concurrent_workers_build_once_and_see_a_complete_build(tmp_path: Path):
    dst = tmp_path / "shared"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(dst)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs == ["complete", "complete"]
    assert (tmp_path / "builds.log").read_text() == "built\n"
    # Later callers reuse it.
    assert build_once(dst, lambda d: pytest.fail("built a second time")) == dst


def test_a_failed_build_is_removed_and_done_again(tmp_path: Path):
    dst = tmp_path / "shared"

    def broken(d: Path) -> None:
        d.mkdir()
        (d / "half").write_text("")
        raise RuntimeError("failed half-way")

    with pytest.raises(RuntimeError):
        build_once(dst, broken)
    build_once(dst, lambda d: d.mkdir())
    assert dst.is_dir() and not (dst / "half").exists()


def _store_state(uri: str) -> dict:
    import sqlite3

    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiments = [
        (e.experiment_id, e.name, e.artifact_location) for e in client.search_experiments()
    ]
    new_id = client.create_experiment("second")
    with contextlib.closing(sqlite3.connect(uri.removeprefix("sqlite:///"))) as db:
        tables = sorted(
            r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        )
        version = db.execute("SELECT version_num FROM alembic_version").fetchall()
    return {"experiments": experiments, "new id": new_id, "tables": tables, "version": version}


def test_a_copied_store_is_as_a_new_one(tmp_path, monkeypatch, new_store):
    monkeypatch.chdir(tmp_path)  # a new store's Default experiment keeps its artifacts here
    copied = _store_state(new_store(tmp_path / "copied" / "mlflow.db"))
    fresh = _store_state(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert copied == fresh
    assert copied["experiments"] == [("0", "Default", str(tmp_path / "mlruns" / "0"))]
