"""The real DVC pipeline on the small subset, in a temporary copy of the repository."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import yaml

from intro_cnn import config
from tests.conftest import ROOT, SUBSET, run


def registry_paths(models: list[str], replicates: list[tuple[str, int]] = ()) -> set[str]:
    """Every file and folder intro_cnn/config/__init__.py names, for these models and these
    (model, seed) replicates."""
    named = {str(v) for v in vars(config).values() if isinstance(v, Path) and not v.is_absolute()}
    for name, seed in replicates:
        folder = config.replicate_dir(name, seed)
        named |= {str(config.replicate_model_path(name, seed)), str(folder)}
    for name in models:
        named |= {
            str(config.model_path(name)),
            str(config.history_path(name)),
            str(config.train_metrics_path(name)),
            str(config.train_timing_path(name)),
            str(config.run_info_path(name)),
            *(str(config.eval_dir(name) / f) for f in config.EVAL_FILES),
        }
    return named


def dvc_yaml_paths() -> dict[str, set[str]]:
    """The data paths of each stage of dvc.yaml (deps, outs, metrics, plots), foreach expanded;
    source files (stages/*.py) and params left out."""
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    params = config.load_params(ROOT / "params.yaml")
    found: dict[str, set[str]] = {}
    for name, stage in spec["stages"].items():
        keys: list = [None]
        if "foreach" in stage:
            keys = [{"${key}": m} for m in params.models]
        elif "matrix" in stage:
            keys = [
                {"${item.model}": m, "${item.seed}": str(s)}
                for m in params.replicates.models
                for s in params.replicates.seeds
            ]
        body = stage.get("do", stage)
        for key in keys:
            paths = set()
            for section in ("deps", "outs", "metrics", "plots"):
                for entry in body.get(section, []):
                    path = next(iter(entry)) if isinstance(entry, dict) else entry
                    for placeholder, value in (key or {}).items():
                        path = path.replace(placeholder, value)
                    if path.split("/")[0] not in ("stages", "intro_cnn"):
                        paths.add(path)
            found[f"{name}@{'-'.join(key.values())}" if key else name] = paths
    found["plots"] = {p for plot in spec["plots"] for y in plot.values() for p in y["y"]}
    return found


def test_every_path_in_dvc_yaml_is_named_in_config():
    """dvc.yaml and intro_cnn/config/__init__.py name the same files: one registry, checked both
    ways (every stage, every model)."""
    params = config.load_params(ROOT / "params.yaml")
    replicates = [(m, s) for m in params.replicates.models for s in params.replicates.seeds]
    named = registry_paths(list(params.models), replicates)
    used = dvc_yaml_paths()
    for stage, paths in used.items():
        assert paths <= named, (
            f"{stage}: {sorted(paths - named)} not named in intro_cnn/config/__init__.py"
        )
    declared = {Path(p) for p in set().union(*used.values())}

    def covered(path: Path) -> bool:  # declared, a folder above one, or inside a declared folder
        return any(path == d or path in d.parents or d in path.parents for d in declared)

    unused = sorted(p for p in named if not covered(Path(p)))
    assert unused == [], (
        f"named in intro_cnn/config/__init__.py but in no stage of dvc.yaml: {unused}"
    )


def test_no_output_dvc_caches_is_tracked_by_git():
    """DVC refuses to run a stage whose cached output git tracks (`output ... is already
    tracked by SCM`): a move from `cache: false` to cached must untrack the files too."""
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        cached = {
            str(Path(out.fs_path).relative_to(ROOT)) for out in repo.index.outs if out.use_cache
        }
    tracked = set(run(["git", "ls-files"], ROOT).stdout.splitlines())
    both = sorted(p for p in tracked if any(p == c or p.startswith(f"{c}/") for c in cached))
    assert both == [], f"cached by DVC and tracked by git (git rm --cached them): {both}"


def test_models_in_params_are_the_ones_dvc_trains():
    params = config.load_params(ROOT / "params.yaml")
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert stages["train"]["foreach"] == "${models}"
    assert set(params.models)


@pytest.mark.slow
def test_download_preprocess_for_real_then_nothing_to_do(repo):
    out = run(["dvc", "repro", "download", "preprocess"], repo)
    assert "Running stage 'download'" in out.stdout
    sources = json.loads((repo / "data/raw/sources.json").read_text())
    assert sources["mnist"]["source"] == "local"
    with np.load(repo / "data/raw/mnist.npz") as raw, np.load(SUBSET) as sub:
        for k in ("x_train", "y_train", "x_test", "y_test"):
            np.testing.assert_array_equal(raw[k], sub[k])
    with np.load(repo / "data/processed/mnist.npz") as proc:
        assert proc["x_train"].shape == (900, 28, 28, 1)
        assert proc["x_val"].shape == (100, 28, 28, 1)
        assert proc["x_test"].dtype == np.float32
    summary = json.loads((repo / "data/processed/summary.json").read_text())
    assert summary["val"]["n"] == 100

    again = run(["dvc", "repro", "download", "preprocess"], repo)
    assert "Running stage" not in again.stdout
    dag = run(["dvc", "dag", "preprocess"], repo).stdout
    assert "download" in dag and "preprocess" in dag


@pytest.mark.slow
@pytest.mark.pipeline
def test_identical_retraining_changes_no_model_and_no_metric(trained_repo):
    """`dvc repro -f train@X` with unchanged inputs: the model file, its history and metrics
    keep their bytes, and after the rerun `dvc metrics diff` is empty. What still changes is
    named: the new MLflow run id (run.json) and the wall clock (timing.json), which evaluate
    reads (and compare and visualize, through the folder)."""
    repo = trained_repo  # the committed baseline, one epoch per model
    stable = [
        "models/cnn_small.keras",
        "reports/train/cnn_small/history.csv",
        "reports/train/cnn_small/metrics.json",
    ]
    before = {path: (repo / path).read_bytes() for path in stable}

    out = run(["dvc", "repro", "-f", "-s", "train@cnn_small"], repo)
    assert "Running stage 'train@cnn_small'" in out.stdout
    assert {path: (repo / path).read_bytes() for path in stable} == before
    status = json.loads(run(["dvc", "status", "--json"], repo).stdout)
    # The stages that read the run id or the timing; compare and visualize read the folder.
    assert set(status) == {"evaluate@cnn_small", "compare", "visualize"}, status

    def changed(stage: str) -> set[str]:
        return {p for entry in status[stage] for p in entry.get("changed deps", {})}

    assert changed("evaluate@cnn_small") == {"reports/train/cnn_small/run.json"}
    assert changed("compare") == changed("visualize") == {"reports/train"}

    run(["dvc", "repro"], repo)
    assert json.loads(run(["dvc", "metrics", "diff", "HEAD", "--json"], repo).stdout) == {}


def _exp_show_header(repo: Path, *args: str) -> list[str]:
    return run(["dvc", "exp", "show", *args, "--csv"], repo).stdout.splitlines()[0].split(",")


@pytest.mark.slow
@pytest.mark.pipeline
def test_the_default_dvc_tables_lead_with_the_test_accuracies(trained_repo):
    """Plain `dvc exp show` and `dvc metrics show`, as a new user types them: the first metric
    columns are each model's test accuracy (its seeds' mean), in params order; no metric is a
    count that never changes."""
    models = list(yaml.safe_load((trained_repo / "params.yaml").read_text())["models"])
    header = _exp_show_header(trained_repo)
    first_metric = next(i for i, c in enumerate(header) if c.startswith("accuracy."))
    assert header[first_metric : first_metric + len(models)] == [f"accuracy.{m}" for m in models]
    assert not [c for c in header[:first_metric] if "." in c], header  # no metric before them

    shown = json.loads(run(["dvc", "metrics", "show", "--json"], trained_repo).stdout)
    (files,) = [entry["data"] for entry in shown.values()]
    accuracy = files[config.COMPARE_ACCURACY.as_posix()]["data"]["accuracy"]
    full = json.loads((trained_repo / config.COMPARE_METRICS).read_text())
    assert accuracy == {m: full[m]["seeds"]["test_accuracy"]["mean"] for m in models}
    table = run(["dvc", "metrics", "show"], trained_repo).stdout.splitlines()
    assert table[0].split()[1 : 1 + len(models)] == [f"accuracy.{m}" for m in models], table[0]
    assert not [k for k in json.dumps(shown).split('"') if k in ("per_class", "pixel_mean")]


@pytest.mark.slow
@pytest.mark.pipeline
def test_the_readmes_compact_exp_show_leads_with_the_test_accuracies(trained_repo):
    """The README's `dvc exp show` command, on a trained project: of the metrics, only each
    model's test accuracy (its seeds' mean) is left; no losses, per-seed values, seed counts or
    dependency hashes."""
    (command,) = [
        line.split("  #")[0].strip()
        for line in (ROOT / "README.md").read_text().splitlines()
        if line.startswith("dvc exp show ")
    ]
    args = shlex.split(command)[3:]
    args.remove("--only-changed")  # one row here: every column is shared
    header = _exp_show_header(trained_repo, *args)
    models = list(yaml.safe_load((trained_repo / "params.yaml").read_text())["models"])
    metric_columns = [c for c in header if c.split(".")[0] in {"accuracy", *models}]
    assert metric_columns == [f"accuracy.{m}" for m in models], header
    assert "models" not in header and not [c for c in header if "/" in c], header
