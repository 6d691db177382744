"""Working as a team: one PostgreSQL-backed MLflow server with authentication and one S3
remote, two clones; who may do what on them.

Everything is real: PostgreSQL, ``mlflow server --app-name basic-auth``, SeaweedFS' S3 gateway
(scripts/stack.py), DVC with its S3 plugin, git with a bare remote, the pipeline on the MNIST
subset and the gate.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from intro_cnn import tracking
from tests.conftest import BASELINE_PARAMS, MODELS, ROOT, VENV_BIN, run, write_params

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
    assert not list(tmp_path.glob("*.log")), "a server started before the check"


# ------------------------------------------------------------------------------ the stack
class Api:
    """A few calls of MLflow's REST API (what any client, the UI included, sees), as one user
    (None: anonymous)."""

    def __init__(self, url: str, user: str | None = None, password: str = "") -> None:
        self.url = url
        self.headers = {"Content-Type": "application/json"}
        if user:
            pair = base64.b64encode(f"{user}:{password}".encode()).decode()
            self.headers["Authorization"] = f"Basic {pair}"

    def call(self, method: str, path: str, body: dict | None = None, **query: Any) -> Any:
        qs = urllib.parse.urlencode(query)
        req = urllib.request.Request(
            f"{self.url}/api/2.0/mlflow/{path}?{qs}",
            data=None if body is None else json.dumps(body).encode(),
            headers=self.headers,
            method=method,
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"{}")

    def get(self, path: str, **query: Any) -> dict[str, Any]:
        return self.call("GET", path, **query)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", path, body)

    def status(self, method: str, path: str, body: dict | None = None, **query: Any) -> int:
        """The HTTP status of one call (a refusal is an answer here, not an error)."""
        try:
            self.call(method, path, body, **query)
        except urllib.error.HTTPError as exc:
            return exc.code
        return 200

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
        info["state"] = state
        for private in ("secrets.json", "ci-credentials.json", "basic_auth.ini"):
            assert oct((state / private).stat().st_mode & 0o777) == "0o600", private
        yield info
    finally:
        run([*cli, "down", "--state-dir", str(state)], ROOT, check=False)
        for svc in ("postgres", "mlflow", "s3"):
            pid = (locals().get("info") or {}).get(svc, {}).get("pid")
            if pid:
                assert not Path(f"/proc/{pid}").exists() or _zombie(pid), f"{svc} still runs"
        shutil.rmtree(state, ignore_errors=True)


def stack_env(stack: dict[str, Any]) -> dict[str, str]:
    """What ``scripts/stack.py env`` prints for a member, as a mapping."""
    out = run([sys.executable, str(STACK), "env", "--state-dir", str(stack["state"])], ROOT).stdout
    lines = [line.removeprefix("export ") for line in out.splitlines()]
    return dict(line.split("=", 1) for line in lines)


def assert_no_secret_shown(stack: dict[str, Any], *outputs: str) -> None:
    """No generated password or key appears in the services' logs, in any process's command
    line, or in ``outputs``."""
    shown = {p.name: p.read_text(errors="replace") for p in stack["state"].glob("*.log")}
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    shown |= {"process list": ps.stdout, **{f"output {i}": o for i, o in enumerate(outputs)}}
    for key, value in stack["secrets"].items():
        for where, text in shown.items():
            assert value not in text, f"{key} appears in {where}"


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
        ("access_key_id", secret["s3_member_access_key_id"]),
        ("secret_access_key", secret["s3_member_secret_access_key"]),
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

    # Both teammates work as members, with what `scripts/stack.py env` prints.
    member_env = stack_env(stack)
    api = Api(stack["mlflow"]["url"], "member", member_env["MLFLOW_TRACKING_PASSWORD"])
    mlflow_env = {k: v for k, v in member_env.items() if k.startswith("MLFLOW_")}

    # The project as a team shares it: one epoch per model (speed), the S3 remote as default.
    write_params(
        repo,
        models={m: {"epochs": 1} for m in MODELS},
        thresholds=BASELINE_PARAMS["thresholds"],  # one epoch on the subset: low bars
    )
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

    # Repeating a teammate's experiment trains nothing: with the shared run cache pulled, B's
    # exact params restore B's trainings, replicates and evaluation, and the server gets no
    # new training run (compare, the figures and the report, git-tracked, run again).
    def training_runs() -> list[str]:
        roles = {tracking.ROLE_TRAINING, tracking.ROLE_REPLICATE}
        return sorted(
            r["info"]["run_id"]
            for r in api.runs(EXPERIMENT)
            if {t["key"]: t["value"] for t in r["data"].get("tags", [])}.get(tracking.ROLE_TAG)
            in roles
        )

    before = training_runs()
    timed("A: dvc pull --run-cache", ["dvc", "pull", "--run-cache"], a)
    repeat = [
        "dvc",
        "exp",
        "run",
        "-n",
        "a-repeats-b",
        "-S",
        "models.cnn_small.learning_rate=0.002",
    ]
    out = timed("A: repeat B's experiment", repeat, a, env=mlflow_env).stdout
    ran = re.findall(r"^Running stage '([^']+)'", out, flags=re.M)
    assert not [s for s in ran if s.startswith(("train@", "replicate@", "evaluate@"))], out
    assert "Stage 'train@cnn_small' is cached - skipping run" in out, out
    assert training_runs() == before
    repeated = _run_id(a, "cnn_small", _exp_ref(a, "a-repeats-b"))
    assert repeated == _run_id(a, "cnn_small", _exp_ref(a, "b-lr"))

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

    # The gate, run by a member, is refused and moves nothing; run as the CI, it registers and
    # crowns the four models it measured.
    gate = [sys.executable, "-m", "intro_cnn.commands.gate"]
    start = time.perf_counter()
    refused = run(gate, a, env=mlflow_env, check=False)
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert "gate: passed, but no alias was moved" in refused.stderr
    assert "the tracking server refused user 'member' permission to register the versions " in (
        refused.stderr
    ), refused.stderr[-3000:]
    assert "(HTTP 403)" in refused.stderr and "Traceback" not in refused.stderr
    assert not any(
        m.get("aliases") for m in api.get("registered-models/search")["registered_models"]
    )
    ci_file = stack["state"] / "ci-credentials.json"
    crowned = run(gate, a, env={**mlflow_env, "INTRO_CNN_GATE_CREDENTIALS": str(ci_file)})
    timings["gate: as member (refused), then as CI"] = time.perf_counter() - start
    assert "gate: acting as 'ci' on the tracking server" in crowned.stderr
    champions = {
        m["name"]: {a["alias"]: a["version"] for a in m.get("aliases", [])}
        for m in api.get("registered-models/search")["registered_models"]
    }
    assert champions == {f"intro-cnn-{m}": {"champion": "1"} for m in MODELS}
    assert_no_secret_shown(stack, refused.stdout + refused.stderr + crowned.stdout + crowned.stderr)
    registered = assert_registered_models_have_versions(api, expect_models=True)

    print("\nteam scenario timings (s):")
    for label, seconds in timings.items():
        print(f"  {label:50} {seconds:7.1f}")
    print(f"  runs on the server: {len(runs)}; registered models: {registered}")


# ------------------------------------------------------------------------------ permissions
def _as(user: str, password: str, monkeypatch) -> Any:
    """Make every MLflow client of this process act as ``user`` (they read the environment at
    each request), and return one."""
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    return MlflowClient(os.environ["MLFLOW_TRACKING_URI"])


def _logged_model(client: Any, experiment_id: str, model: str) -> str:
    """A logged model as a training leaves it: in a run, tagged with a digest and its card."""
    run_id = client.create_run(experiment_id).info.run_id
    logged = client.create_logged_model(experiment_id, name=model, source_run_id=run_id)
    tags = tracking.logged_model_tags(["Conv2D", "Dense"], 1234, os.urandom(32).hex())
    client.set_logged_model_tags(logged.model_id, tags)
    return logged.model_id


@pytest.mark.slow
def test_only_the_ci_identity_moves_champion_and_members_delete_nothing(
    stack, monkeypatch, tmp_path
):
    """The permission table of scripts/stack_access.py, on the real server and S3 store."""
    import botocore.exceptions
    import botocore.session
    from mlflow.server import get_app_client

    url, secret = stack["mlflow"]["url"], stack["secrets"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    member_pw, ci_pw = secret["mlflow_member_password"], secret["mlflow_ci_password"]
    experiment = Api(url, "member", member_pw).get(
        "experiments/get-by-name", experiment_name=EXPERIMENT
    )["experiment"]["experiment_id"]

    # Anonymous: every API call needs a user.
    anonymous = Api(url)
    assert anonymous.status("GET", "experiments/get-by-name", experiment_name=EXPERIMENT) == 401
    assert anonymous.status("POST", "runs/create", {"experiment_id": experiment}) == 401

    # A second teammate, added as the README says an admin does.
    _as("admin", secret["mlflow_admin_password"], monkeypatch)
    auth = get_app_client("basic-auth", tracking_uri=url)
    auth.create_user("bob", "bob-password-123")
    auth.grant_user_permission("bob", "experiment", experiment, "EDIT")
    bobs_run = _as("bob", "bob-password-123", monkeypatch).create_run(experiment).info.run_id

    # A member logs runs and logged models, and reads the registry...
    member = Api(url, "member", member_pw)
    run_id = member.post("runs/create", {"experiment_id": experiment})["run"]["info"]["run_id"]
    assert member.status("POST", "runs/log-metric", {"run_id": run_id, "key": "a", "value": 1,
                                                     "timestamp": 0, "step": 0}) == 200  # fmt: skip
    assert member.status("GET", "registered-models/get", name="intro-cnn-cnn") == 200
    # ... but deletes no teammate's run, registers nothing and moves no alias (HTTP 403).
    assert member.status("POST", "runs/delete", {"run_id": bobs_run}) == 403
    alias = {"name": "intro-cnn-cnn", "alias": "champion", "version": "1"}
    assert member.status("POST", "registered-models/alias", alias) == 403
    client = _as("member", member_pw, monkeypatch)
    logged = {m: _logged_model(client, experiment, m) for m in ("cnn", "mlp")}
    with pytest.raises(tracking.TrackingError) as refused:
        tracking.promote(url, logged)
    said = str(refused.value)
    assert said.startswith("the tracking server refused user 'member' permission to register")
    assert "(HTTP 403)" in said and "INTRO_CNN_GATE_CREDENTIALS" in said
    assert client.search_model_versions("name LIKE 'intro-cnn-%'") == []

    # The CI identity registers and moves every @champion.
    ci = _as("ci", ci_pw, monkeypatch)
    assert tracking.promote(url, logged) == {"intro-cnn-cnn": "1", "intro-cnn-mlp": "1"}
    assert ci.get_model_version_by_alias("intro-cnn-mlp", "champion").version == "1"
    assert "1,234 parameters" in ci.get_registered_model("intro-cnn-cnn").description

    # All or none: the CI loses its right on mlp; a new promotion of both moves neither.
    _as("admin", secret["mlflow_admin_password"], monkeypatch)
    auth.revoke_user_permission("ci", "registered_model", "intro-cnn-mlp")
    newer = {m: _logged_model(_as("member", member_pw, monkeypatch), experiment, m) for m in logged}
    _as("ci", ci_pw, monkeypatch)
    with pytest.raises(tracking.TrackingError, match="refused user 'ci' permission"):
        tracking.promote(url, newer)
    for model in ("cnn", "mlp"):
        assert ci.get_model_version_by_alias(f"intro-cnn-{model}", "champion").version == "1"

    # A training by someone who may not log runs there (the CI) is refused in one sentence.
    from intro_cnn import config
    from intro_cnn.tracking import train_mlflow

    data = {"x_train": np.zeros((4, 28, 28), np.float32), "y_train": np.zeros((4, 10))}
    monkeypatch.chdir(tmp_path)
    config.PROCESSED_MNIST.parent.mkdir(parents=True)
    np.savez(config.PROCESSED_MNIST, **data)
    with pytest.raises(tracking.TrackingError) as refused:
        train_mlflow.open_training_run("cnn", EXPERIMENT, {}, data, tracking.now_ms())
    assert str(refused.value).startswith(
        "the tracking server refused user 'ci' permission to log runs to experiment 'intro-cnn'"
    )

    # S3: a member reads and writes the remote's objects, deletes no bucket; the admin may.
    def s3(role: str) -> Any:
        return botocore.session.get_session().create_client(
            "s3",
            endpoint_url=stack["s3"]["endpoint"],
            region_name="us-east-1",
            aws_access_key_id=secret[f"s3_{role}_access_key_id"],
            aws_secret_access_key=secret[f"s3_{role}_secret_access_key"],
        )

    bucket = stack["s3"]["bucket"]
    s3("member").put_object(Bucket=bucket, Key="dvc/probe", Body=b"team")
    assert s3("member").get_object(Bucket=bucket, Key="dvc/probe")["Body"].read() == b"team"
    for forbidden in (
        lambda: s3("member").delete_bucket(Bucket=bucket),
        lambda: s3("member").create_bucket(Bucket="elsewhere"),
    ):
        with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
            forbidden()
    s3("admin").create_bucket(Bucket="scratch")
    s3("admin").delete_bucket(Bucket="scratch")

    assert_no_secret_shown(stack, said)
