"""Shared fixtures: the small real MNIST subset and a throw-away copy of the repository."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

from intro_cnn.runtime import files, tf_import
from intro_cnn.runtime.files import write_json, write_npz, write_text
from intro_cnn.training import tf_settings

ROOT = Path(__file__).resolve().parent.parent
SUBSET = ROOT / "tests" / "fixtures" / "mnist_subset.npz"
VENV_BIN = Path(sys.executable).parent

# Copied into a temporary repo for pipeline tests: everything the stages need, nothing built.
REPO_FILES = (
    "stages",
    "intro_cnn",
    "params.yaml",
    "dvc.yaml",
    "pyproject.toml",
    ".dvcignore",
    "plots/by_model.json",  # the top-level plots' template
    "reports/replicates/.gitkeep",  # compare depends on the folder, replicated or not
)
MODELS = ("cnn", "cnn_small", "cnn_small_bn", "mlp")
# The shared trained project of the pipeline tests: one epoch per model on the subset (900
# images), two feature-map images, and thresholds any trained network passes, so `make gate`
# passes and crowns.
BASELINE_PARAMS = {
    "models": {name: {"epochs": 1} for name in MODELS},
    # Two seeds of each replicated model: the replicate stages, the aggregates, the claims
    # judged on paired seeds and the gate's rule across seeds, end to end.
    "replicates": {"models": ["cnn_small", "cnn_small_bn", "mlp"], "seeds": [2]},
    "report": {"n_feature_images": 2},
    "thresholds": {
        "min": {name: {"test.accuracy": 0.05} for name in MODELS},
        "better_than": [],
    },
}

# Under an instruction-set cap without bfloat16 kernels (CI's `ONEDNN_MAX_CPU_ISA=AVX2` run on
# an AMX machine) TensorFlow still hands bfloat16 convolutions to oneDNN, which refuses them.
needs_bfloat16_kernels = pytest.mark.skipif(
    not tf_settings.isa_cap_allows(tf_settings.onednn_isa_cap(), "BF16"),
    reason="ONEDNN_MAX_CPU_ISA leaves oneDNN no bfloat16 kernels",
)


@pytest.fixture(autouse=True)
def _isolate_mlflow_uri():
    """mlflow.set_tracking_uri() also exports MLFLOW_TRACKING_URI: keep it from leaking into
    the next test's subprocesses."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


@pytest.fixture(scope="session")
def subset() -> dict[str, np.ndarray]:
    with np.load(SUBSET) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="session")
def subset_hashes(subset: dict[str, np.ndarray]) -> dict[str, str]:
    return {k: files.array_sha256(v) for k, v in subset.items()}


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, check: bool = True):
    """Run a command with the test venv first on PATH; show its output when it fails."""
    full_env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    full_env.update(env or {})
    out = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True)
    if check and out.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {out.returncode}\nstdout:\n{out.stdout[-4000:]}\n"
            f"stderr:\n{out.stderr[-4000:]}"
        )
    return out


def write_params(repo: Path, **sections: dict) -> None:
    """Deep-merge overrides into the temporary repo's params.yaml."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())

    def merge(dst: dict, src: dict) -> None:
        for k, v in src.items():
            if isinstance(v, dict) and isinstance(dst.get(k), dict):
                merge(dst[k], v)
            else:
                dst[k] = v

    merge(params, sections)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def make_repo(dst: Path, subset_hashes: dict[str, str]) -> Path:
    """A git + DVC repository in ``dst`` holding a copy of the project, wired to the MNIST
    subset.

    The data section points at the committed subset (through ``data.local``) and pins its
    content hashes, so the real download code runs without network. The demo image comes from
    matplotlib's bundled portrait through DEMO_IMAGE-free ``data.image_local``.
    """
    import matplotlib.cbook

    dst.mkdir(parents=True)
    for name in REPO_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / name)
    image = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    write_params(
        dst,
        data={
            "local": str(SUBSET),
            "content_sha256": subset_hashes,
            "image_local": str(image),
            "retries": 0,
        },
        # No replicates unless a test asks for them: each is one more training.
        replicates={"models": [], "seeds": []},
    )
    run(["git", "init", "-q"], dst)
    run(["git", "config", "user.email", "test@example.com"], dst)
    run(["git", "config", "user.name", "test"], dst)
    run(["dvc", "init", "-q"], dst)
    run(["dvc", "config", "core.analytics", "false"], dst)
    run(["git", "add", "-A"], dst)
    run(["git", "commit", "-qm", "init"], dst)
    return dst


@pytest.fixture
def repo(tmp_path: Path, subset_hashes: dict[str, str]) -> Path:
    """A fresh project repository (see :func:`make_repo`): nothing built yet."""
    return make_repo(tmp_path / "repo", subset_hashes)


@pytest.fixture(scope="session")
def trained_baseline(tmp_path_factory, subset_hashes: dict[str, str]) -> Path:
    """The project after a real ``dvc repro`` on the subset with :data:`BASELINE_PARAMS`,
    built once per test session (about two minutes) and never changed afterwards: copy it with
    the ``trained_repo`` fixture.

    Its history: ``init``, ``one epoch`` (the params the pipeline ran with, so the execution's
    parent run is named after that commit) and ``baseline results`` (everything the run wrote,
    the MLflow store included). Under pytest-xdist the workers share one build: the first to
    need it builds it under a file lock, the others wait for it.
    """

    def build(dst: Path) -> None:
        make_repo(dst, subset_hashes)
        write_params(dst, **BASELINE_PARAMS)
        run(["git", "commit", "-qam", "one epoch"], dst)
        run(["dvc", "repro"], dst)
        run(["git", "add", "-A"], dst)
        run(["git", "commit", "-qm", "baseline results"], dst)

    return build_once(shared_temp(tmp_path_factory) / "trained-baseline", build)


def shared_temp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's temporary folder that every pytest-xdist worker sees."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # each worker's basetemp is below a shared one
        shared = shared.parent
    return shared


@pytest.fixture(scope="session")
def store_template(tmp_path_factory) -> Path:
    """An empty MLflow SQLite store, its tables made and migrated, built once per session:
    making them costs a new store 1.2-1.8 s, a copy of this one 0.05 s. It holds no
    experiment, so the copy's Default experiment is made where the copy is first opened,
    as in a new store."""

    def build(dst: Path) -> None:
        import sqlite3

        from mlflow import MlflowClient

        dst.mkdir(parents=True)
        MlflowClient(f"sqlite:///{dst / 'mlflow.db'}").search_experiments()
        with contextlib.closing(sqlite3.connect(dst / "mlflow.db")) as db, db:
            db.execute("DELETE FROM experiments")

    return build_once(shared_temp(tmp_path_factory) / "mlflow-store", build) / "mlflow.db"


@pytest.fixture
def new_store(store_template: Path) -> Callable[[Path], str]:
    """``new_store(path)``: an empty MLflow store at ``path`` (a copy of
    :func:`store_template`); returns its tracking URI."""

    def make(db: Path) -> str:
        db.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(store_template, db)
        return f"sqlite:///{db}"

    return make


def build_once(dst: Path, build: Callable[[Path], None]) -> Path:
    """``build(dst)`` unless a complete build is there already, under a file lock beside
    ``dst``, so processes that share the folder build it once and wait for each other. A build
    counts as complete once ``build`` returned (a marker file beside ``dst``); one that failed
    half-way is removed and done again."""
    from filelock import FileLock

    done = dst.with_name(dst.name + ".complete")
    with FileLock(str(dst.with_name(dst.name + ".lock"))):
        if not done.exists():
            shutil.rmtree(dst, ignore_errors=True)
            build(dst)
            done.touch()
    return dst


@pytest.fixture
def trained_repo(tmp_path: Path, trained_baseline: Path) -> Path:
    """A copy of :func:`trained_baseline` of its own (git history, DVC cache and run cache,
    MLflow store): as a user copies a project. The stages relocate the MLflow store to the copy
    when they first open it; until then its artifact paths name the baseline's files."""
    dst = tmp_path / "repo"
    shutil.copytree(trained_baseline, dst, symlinks=True)
    return dst


@pytest.fixture(scope="session")
def tiny_cnn(tmp_path_factory, subset) -> Path:
    """A ``cnn`` trained briefly (float32, 3 epochs) on the subset, saved as a .keras file: a
    real network for the predict, serving and drawing-pad tests (not an accurate one). Built
    once per test session, shared by the pytest-xdist workers as :func:`trained_baseline` is."""

    def build(dst: Path) -> None:
        import keras

        from intro_cnn.data.dataset import one_hot
        from intro_cnn.data.preprocess import to_float_images
        from intro_cnn.models import build_model

        keras.utils.set_random_seed(0)
        model = build_model("cnn", "float32")
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        model.fit(
            to_float_images(subset["x_train"]),
            one_hot(subset["y_train"]),
            epochs=3,
            batch_size=64,
            verbose=0,
        )
        dst.mkdir(parents=True)
        model.save(dst / "cnn.keras")

    return build_once(shared_temp(tmp_path_factory) / "tiny-cnn", build) / "cnn.keras"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first: whole pipelines, then the other slow tests, then the rest, each
    group in file order. Handed out one at a time (pyproject.toml), the pipelines start at once
    on separate workers and the short tests fill the gaps, instead of a long test starting
    last.

    pytest-xdist starts each worker with two consecutive tests (then one at a time), so a
    worker's first test sits at an even position. One pipeline that copies
    :func:`trained_baseline` goes first (its worker builds the project, then runs a second
    copy); each pipeline that does not copy it opens another worker's pair, so no worker
    starts by waiting for the build."""
    pipelines = [i for i in items if i.get_closest_marker("pipeline")]
    copying = [i for i in pipelines if "trained_repo" in getattr(i, "fixturenames", ())]
    own = [i for i in pipelines if i not in copying]
    ordered, copies = copying[:2], copying[2:]
    for item in own:
        ordered.append(item)
        if copies:
            ordered.append(copies.pop(0))
    pipelines = ordered + copies
    slow = [i for i in items if i.get_closest_marker("slow") and i not in pipelines]
    rest = [i for i in items if not i.get_closest_marker("slow") and i not in pipelines]
    items[:] = pipelines + slow + rest


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C as a user's terminal sends it: a runner that starts the tests in the background
    (`cmd &` in a script) leaves SIGINT ignored, and every stage subprocess would inherit that,
    so the interrupt tests would test nothing. Python's own handler here; SIG_DFL in children.

    Tests that import Keras themselves get the oneDNN kernels the stages get on any CPU."""
    os.environ.setdefault(tf_import.ONEDNN_SWITCH, "1")
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def train_until_epoch(
    repo: Path, model: str, env: dict[str, str], epoch: int = 2, timeout: float = 120
) -> tuple[subprocess.Popen[str], list[str]]:
    """Start ``python -m stages.train model`` in ``repo`` and read its log until epoch
    ``epoch`` is done (training is really under way) or ``timeout`` seconds pass; returns the
    running process and the lines read."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "stages.train", model],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if f"Epoch {epoch}/" in line or time.monotonic() > deadline:
            break
    return proc, lines


def build_project(
    root: Path, subset: dict[str, np.ndarray], lang: str = "es", n_train: int = 200
) -> dict[str, str]:
    """A project in ``root`` (the cwd) as `dvc repro` leaves it after train, evaluate and
    compare, on tiny models really trained for one epoch; returns each model's MLflow training
    run id.

    MLFLOW_TRACKING_URI must point into ``root`` already.
    """
    from mlflow import MlflowClient

    from intro_cnn import config, tracking
    from intro_cnn.models import build_model
    from intro_cnn.tracking import mlflow_store
    from intro_cnn.training import fitting, tf_settings, train_outputs
    from stages import compare, evaluate

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for cfg in raw["models"].values():
        cfg.update(epochs=1, batch_size=50)
    raw["evaluate"] = {"batch_size": 100, "n_wrong": 8}
    raw["report"].update(lang=lang, dpi=40)
    raw["train"]["steps_per_execution"] = 1
    raw["replicates"] = {"models": [], "seeds": []}
    write_text(root / "params.yaml", yaml.safe_dump(raw, sort_keys=False))
    params = config.load_params()

    x = (subset["x_train"].astype(np.float32) / 255.0)[..., None]
    data = {
        "x_train": x[:n_train],
        "y_train": subset["y_train"][:n_train],
        "x_val": x[n_train : n_train + 50],
        "y_val": subset["y_train"][n_train : n_train + 50],
        "x_test": (subset["x_test"].astype(np.float32) / 255.0)[..., None],
        "y_test": subset["y_test"],
    }
    write_npz(config.PROCESSED_MNIST, data, compress=False)

    uri = mlflow_store.tracking_uri()
    client = MlflowClient(uri)
    exp_id = tracking.experiment_id(client, uri, params.train.experiment)
    run_ids = {}
    for name in params.models:
        tf_settings.configure_tensorflow(params.seed_for(name), deterministic=False)
        model = build_model(name)
        seed = params.seed_for(name)
        result = fitting.fit(model, data, params.model(name), params.train, seed, verbose=0)
        train_outputs.save_model(model, config.model_path(name))
        write_text(config.history_path(name), train_outputs.history_csv(result.history))
        write_json(
            config.train_metrics_path(name),
            train_outputs.metrics_summary(result, model.count_params()),
        )
        write_json(config.train_timing_path(name), train_outputs.timing_summary(result))
        run_ids[name] = client.create_run(exp_id, run_name=name).info.run_id
        write_json(
            config.run_info_path(name),
            {"run_id": run_ids[name], "experiment": params.train.experiment, "model": name},
        )
    for name in params.models:
        evaluate.main([name])
    compare.main()
    return run_ids


BROWSER = next(
    filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None
)
needs_browser = pytest.mark.skipif(BROWSER is None, reason="chromium not installed")
RESULT_ID = "browser-test-result"


def run_in_browser(page: str, script: str, tmp_path: Path, window: str = "1280,900") -> dict:
    """Open ``page`` with ``script`` appended in headless Chromium (window ``window``); the
    script's JSON result (or what its promise resolves to) is written into an element and read
    back from the DOM Chromium dumps. Pages may read the files beside them (frames included:
    ``--allow-file-access-from-files``)."""
    test_page = tmp_path / "browser_test.html"
    harness = (
        "<script>(function(){const put=(out)=>{"
        f"const pre=document.createElement('pre');pre.id='{RESULT_ID}';"
        "pre.textContent=JSON.stringify(out);document.body.appendChild(pre);};"
        f"new Promise((ok)=>ok((function(){{{script}}})()))"
        ".then(put, (e)=>put({error: String(e)}));})();</script>"
    )
    test_page.write_text(page.replace("</body>", harness + "</body>"), encoding="utf-8")
    out = subprocess.run(
        [
            BROWSER,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--allow-file-access-from-files",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--window-size={window}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            test_page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    found = re.search(rf'<pre id="{RESULT_ID}">(.*?)</pre>', out.stdout, flags=re.S)
    assert found, f"no result in the page; chromium stderr:\n{out.stderr[-3000:]}"
    result = json.loads(
        found.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    )
    assert "error" not in result, result
    return result
