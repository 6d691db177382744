"""Working as a team: one PostgreSQL-backed MLflow server and one S3 remote, two clones.

Everything is real: PostgreSQL, ``mlflow server``, SeaweedFS' S3 gateway (scripts/stack.py),
DVC with its S3 plugin, git with a bare remote, and the pipeline on the MNIST subset.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import MODELS, ROOT, VENV_BIN, run, write_params

STACK = ROOT / "scripts" / "stack.py"
EXPERIMENT = "intro-cnn"


# ------------------------------------------------------------------------------ quick checks
def test_project_remote_is_s3_and_holds_no_secret():
    """The committed DVC config names the S3 remote as default; endpoint and keys stay local."""
    text = (ROOT / ".dvc" / "config").read_text()
    out = run(["dvc", "config", "--project", "-l"], ROOT).stdout.splitlines()
    conf = dict(line.split("=", 1) for line in out)
    assert conf["core.remote"] == "team"
    assert conf["remote.team.url"].startswith("s3://")
    for secret_key in ("access_key_id", "secret_access_key", "endpointurl", "credentialpath"):
        assert f"remote.team.{secret_key}" not in conf, text
    assert "/config.local" in (ROOT / ".dvc" / ".gitignore").read_text().split()


def test_stack_env_without_servers_says_how_to_start(tmp_path):
    out = subprocess.run(
        [sys.executable, str(STACK), "env", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert "not running: postgres, mlflow, s3" in out.stderr
    assert "make stack-up" in out.stderr
    status = subprocess.run(
        [sys.executable, str(STACK), "status", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert status.returncode == 3 and "postgres  stopped" in status.stdout


def test_stack_without_postgres_binaries_names_the_package(tmp_path):
    out = subprocess.run(
        [sys.executable, str(STACK), "up", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PG_BINDIR": str(tmp_path / "nowhere")},
    )
    assert out.returncode == 1
    assert "apt-get install postgresql" in out.stderr and "PG_BINDIR" in out.stderr
    assert not (tmp_path / "stack.json").exists()


# ------------------------------------------------------------------------------ the stack
class Api:
    """A few calls of MLflow's REST API (what any client, the UI included, sees)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **query: Any) -> dict[str, Any]:
        qs = urllib.parse.urlencode(query)
        with urllib.request.urlopen(f"{self.url}/api/2.0/mlflow/{path}?{qs}", timeout=30) as r:
            return json.loads(r.read())

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(
            f"{self.url}/api/2.0/mlflow/{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def runs(self, experiment: str) -> list[dict[str, Any]]:
        exp_id = self.get("experiments/get-by-name", experiment_name=experiment)["experiment"][
            "experiment_id"
        ]
        found, token = [], None
        while True:
            body = {"experiment_ids": [exp_id], "max_results": 1000}
            if token:
                body["page_token"] = token
            page = self.post("runs/search", body)
            found += page.get("runs", [])
            token = page.get("next_page_token")
            if not token:
                return found


def assert_registered_models_have_versions(api: Api, expect_models: bool) -> list[str]:
    """Every registered model has at least one version, and every alias names one of them.

    ``expect_models``: whether the pipeline registers models at all (the MLflow registry work
    adds ``intro-cnn-<model>`` models and a ``champion`` alias set by the gate).
    """
    models = api.get("registered-models/search", max_results=1000).get("registered_models", [])
    if expect_models:
        assert models, "no registered model on the server"
    for model in models:
        versions = api.get(
            "model-versions/search", filter=f"name='{model['name']}'", max_results=1000
        ).get("model_versions", [])
        assert versions, f"registered model {model['name']} has no version"
        numbers = {v["version"] for v in versions}
        for alias in model.get("aliases", []):
            assert alias["version"] in numbers, (model["name"], alias)
    return [m["name"] for m in models]


@pytest.fixture
def stack() -> Iterator[dict[str, Any]]:
    """PostgreSQL + mlflow server + SeaweedFS, started with scripts/stack.py, always stopped.

    The state folder is a fresh one under the system temp folder: as root, PostgreSQL runs as
    the ``postgres`` user, which cannot enter pytest's private (0700) tmp_path.
    """
    state = Path(tempfile.mkdtemp(prefix="intro-cnn-stack-"))
    os.chmod(state, 0o755)
    cli = [sys.executable, str(STACK)]
    try:
        start = time.perf_counter()
        info = json.loads(run([*cli, "up", "--json", "--state-dir", str(state)], ROOT).stdout)
        info["seconds_to_start"] = time.perf_counter() - start
        info["secrets"] = json.loads((state / "secrets.json").read_text())
        assert oct((state / "secrets.json").stat().st_mode & 0o777) == "0o600"
        yield info
    finally:
        run([*cli, "down", "--state-dir", str(state)], ROOT, check=False)
        for svc in ("postgres", "mlflow", "s3"):
            pid = (locals().get("info") or {}).get(svc, {}).get("pid")
            if pid:
                assert not Path(f"/proc/{pid}").exists() or _zombie(pid), f"{svc} still runs"
        shutil.rmtree(state, ignore_errors=True)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _clone(origin: Path, dst: Path, stack: dict[str, Any]) -> Path:
    """A teammate's clone: git clone, then the remote's endpoint and keys in config.local."""
    run(["git", "clone", "-q", str(origin), str(dst)], dst.parent)
    run(["git", "config", "user.email", f"{dst.name}@example.com"], dst)
    run(["git", "config", "user.name", dst.name], dst)
    secret = stack["secrets"]
    for key, value in (
        ("endpointurl", stack["s3"]["endpoint"]),
        ("access_key_id", secret["s3_access_key_id"]),
        ("secret_access_key", secret["s3_secret_access_key"]),
    ):
        run(["dvc", "remote", "modify", "--local", "team", key, value], dst)
    return dst


def _run_id(repo: Path, model: str, rev: str | None = None) -> str:
    """The MLflow run id in a model's run.json: in the workspace, or at an experiment's commit
    (run.json is a DVC-cached output: its hash from that commit's dvc.lock, then the cache)."""
    rel = f"reports/train/{model}/run.json"
    if rev is None:
        return json.loads((repo / rel).read_text())["run_id"]
    lock = yaml.safe_load(run(["git", "show", f"{rev}:dvc.lock"], repo).stdout)
    (md5,) = [o["md5"] for o in lock["stages"][f"train@{model}"]["outs"] if o["path"] == rel]
    return json.loads((repo / ".dvc/cache/files/md5" / md5[:2] / md5[2:]).read_text())["run_id"]


def _exp_ref(repo: Path, name: str) -> str:
    refs = run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], repo).stdout.split()
    (ref,) = [r for r in refs if r.endswith(f"/{name}")]
    return ref


def _exp_names(repo: Path) -> set[str]:
    rows = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    names = set()
    for row in rows:
        for exp in row.get("experiments") or []:
            names.update(r.get("name") for r in exp.get("revs", []))
    return names


@pytest.mark.slow
@pytest.mark.pipeline
def test_two_teammates_share_one_server_and_one_remote(repo, stack, tmp_path):
    timings: dict[str, float] = {"stack up": stack["seconds_to_start"]}

    def timed(label: str, cmd: list[str], cwd: Path, **kw: Any) -> subprocess.CompletedProcess:
        start = time.perf_counter()
        out = run(cmd, cwd, **kw)
        timings[label] = timings.get(label, 0.0) + time.perf_counter() - start
        return out

    api = Api(stack["mlflow"]["url"])
    mlflow_env = {"MLFLOW_TRACKING_URI": stack["mlflow"]["url"]}

    # The project as a team shares it: one epoch per model (speed), the S3 remote as default.
    write_params(repo, models={m: {"epochs": 1} for m in MODELS})
    run(["dvc", "remote", "add", "-d", "team", f"s3://{stack['s3']['bucket']}/dvc"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "team set-up"], repo)
    origin = tmp_path / "origin.git"
    run(["git", "clone", "-q", "--bare", str(repo), str(origin)], tmp_path)

    # Teammate A trains everything once and shares code, results and the run cache.
    a = _clone(origin, tmp_path / "alice", stack)
    timed("A: dvc repro (whole pipeline)", ["dvc", "repro"], a, env=mlflow_env)
    baseline = {m: _run_id(a, m) for m in MODELS}
    run(["git", "add", "-A"], a)
    run(["git", "commit", "-qm", "results"], a)
    run(["git", "push", "-q", "origin", "HEAD"], a)
    timed("A: dvc push --run-cache", ["dvc", "push", "--run-cache"], a)
    assert "in sync" in run(["dvc", "status", "--cloud"], a).stdout

    # Teammate B gets them without training anything.
    b = _clone(origin, tmp_path / "bob", stack)
    assert not (b / "models/cnn.keras").exists()
    timed("B: dvc pull", ["dvc", "pull"], b)
    assert all((b / f"models/{m}.keras").exists() for m in MODELS)
    out = timed("B: dvc repro (nothing to do)", ["dvc", "repro"], b, env=mlflow_env)
    assert "Running stage" not in out.stdout, out.stdout
    assert {m: _run_id(b, m) for m in MODELS} == baseline

    # Both train at the same time against the one server: A through a queue worker (as each
    # machine of a team would run its own), B with a plain experiment.
    run(
        [
            "dvc",
            "exp",
            "run",
            "--queue",
            "-n",
            "a-lr3",
            "-S",
            "models.cnn_small.learning_rate=0.003",
        ],
        a,
    )
    start = time.perf_counter()
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", **mlflow_env}
    bob = subprocess.Popen(
        ["dvc", "exp", "run", "-n", "b-lr", "-S", "models.cnn_small.learning_rate=0.002"],
        cwd=b,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # The worker it starts outlives the command: give it no pipe to hold open.
        with open(tmp_path / "queue-start.log", "w") as log:
            subprocess.run(
                ["dvc", "queue", "start", "-j", "1"],
                cwd=a,
                env=env,
                stdout=log,
                stderr=log,
                check=True,
            )
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            status = run(["dvc", "queue", "status"], a).stdout
            if "Queued" not in status and "Running" not in status:
                break
            time.sleep(3)
        assert "Success" in status, (
            status + run(["dvc", "queue", "logs", "a-lr3"], a, check=False).stdout
        )
        bob_out, _ = bob.communicate(timeout=900)
        assert bob.returncode == 0, bob_out[-4000:]
    finally:
        if bob.poll() is None:
            bob.kill()
        run(["dvc", "queue", "stop", "--kill"], a, check=False)
    timings["A queue + B exp run, concurrently"] = time.perf_counter() - start

    # Experiments travel through git (refs) and S3 (their outputs, and the run cache).
    timed("B: dvc exp push", ["dvc", "exp", "push", "--run-cache", "origin", "b-lr"], b)
    timed("A: dvc exp pull", ["dvc", "exp", "pull", "origin", "b-lr"], a)
    assert {"a-lr3", "b-lr"} <= _exp_names(a)
    timed("A: dvc exp push", ["dvc", "exp", "push", "--run-cache", "origin", "a-lr3"], a)
    run(["dvc", "exp", "pull", "origin", "a-lr3"], b)
    assert {"a-lr3", "b-lr"} <= _exp_names(b)

    a_lr3 = _run_id(a, "cnn_small", _exp_ref(a, "a-lr3"))

    # The server has every run, finished, with its per-epoch metrics and its artifacts.
    trained = {
        **{f"baseline {m}": rid for m, rid in baseline.items()},
        "a-lr3 cnn_small": a_lr3,
        "b-lr cnn_small": _run_id(a, "cnn_small", _exp_ref(a, "b-lr")),
    }
    assert len(set(trained.values())) == len(trained), trained
    runs = {r["info"]["run_id"]: r for r in api.runs(EXPERIMENT)}
    for label, run_id in trained.items():
        assert run_id in runs, f"{label}: run {run_id} lost"
        info = runs[run_id]
        assert info["info"]["status"] == "FINISHED", (label, info["info"])
        metrics = {m["key"] for m in info["data"].get("metrics", [])}
        assert "val_accuracy" in metrics, (label, metrics)
        history = api.get("metrics/get-history", run_id=run_id, metric_key="val_accuracy")
        assert [m["step"] for m in history["metrics"]] == [1], label
        files = {f["path"] for f in api.get("artifacts/list", run_id=run_id).get("files", [])}
        assert "history.csv" in files, (label, files)
    # Each execution is one parent run on the server (the concurrent ones apart).
    parents = {}
    for label, run_id in trained.items():
        tags = {t["key"]: t["value"] for t in runs[run_id]["data"].get("tags", [])}
        parents[label] = tags["mlflow.parentRunId"]
        assert parents[label] in runs, f"{label}: parent run {parents[label]} missing"
    assert len({parents[f"baseline {m}"] for m in MODELS}) == 1, parents
    assert (
        len({parents["a-lr3 cnn_small"], parents["b-lr cnn_small"], parents["baseline cnn"]}) == 3
    )
    params = {
        rid: {p["key"]: p["value"] for p in run["data"].get("params", [])}
        for rid, run in runs.items()
    }
    assert params[trained["a-lr3 cnn_small"]]["learning_rate"] == "0.003"
    assert params[trained["b-lr cnn_small"]]["learning_rate"] == "0.002"
    registered = assert_registered_models_have_versions(api, expect_models=True)

    print("\nteam scenario timings (s):")
    for label, seconds in timings.items():
        print(f"  {label:50} {seconds:7.1f}")
    print(f"  runs on the server: {len(runs)}; registered models: {registered}")
