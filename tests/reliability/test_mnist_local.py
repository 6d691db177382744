"""`python -m stages.download --check-local` (run by `make repro` when MNIST_LOCAL is set): DVC
tracks neither MNIST_LOCAL nor the file's content, so an up-to-date download would never read
the file. A bad file is refused (exit 2, naming the file, the problem and the fix) and nothing
is written; a good one is accepted with what `dvc repro` will do with it. Real files, real
subprocesses."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import matplotlib.cbook
import numpy as np
import pytest
import yaml

from intro_cnn.runtime.files import npz_bytes

from .conftest import ROOT, listing, report, spawn, stage_env

SUBSET = ROOT / "tests" / "fixtures" / "mnist_subset.npz"
CHECK = ["stages.download", "--check-local"]


@pytest.fixture
def project(tmp_path: Path, subset_hashes: dict[str, str]) -> Path:
    """params.yaml pinned to the test subset; data/raw not written yet."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    image = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    params["data"].update(
        content_sha256=subset_hashes, image_local=str(image), image_url="", retries=0
    )
    work = tmp_path / "project"
    work.mkdir()
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return work


def downloaded(project: Path, **env: str) -> Path:
    """Run the download stage itself (from the subset) so data/raw holds a first set."""
    outcome = spawn(["stages.download"], project, MNIST_LOCAL=str(SUBSET), **env)
    assert outcome.code == 0, outcome.stderr[-3000:]
    return project / "data" / "raw"


def bad_file(folder: Path, kind: str) -> Path:
    good = SUBSET.read_bytes()
    bad = folder / f"{kind.replace(' ', '_')}.npz"
    if kind == "truncated":
        bad.write_bytes(good[: len(good) // 2])
    elif kind == "html":
        bad.write_bytes(b"<!DOCTYPE html><html><body>404</body></html>")
    elif kind == "wrong content":
        with np.load(SUBSET) as npz:
            arrays = {k: npz[k] for k in npz.files}
        arrays["y_test"] = arrays["y_test"][::-1].copy()
        bad.write_bytes(npz_bytes(arrays))
    return bad  # "missing": never written


@pytest.mark.parametrize("kind", ["truncated", "html", "missing", "wrong content"])
@pytest.mark.parametrize("before", ["no data/raw", "a previous download"])
def test_a_bad_file_is_refused_and_nothing_is_written(project: Path, kind: str, before: str):
    if before == "a previous download":
        downloaded(project)
    bad = bad_file(project.parent, kind)
    state = {p: (project / p).read_bytes() for p in listing(project)}
    outcome = spawn(CHECK, project, MNIST_LOCAL=str(bad))
    report(f"--check-local, {kind} file, {before}", outcome, "unchanged")
    assert outcome.code == 2, outcome.stderr[-3000:]
    assert "Traceback" not in outcome.stderr
    errors = [line for line in outcome.errors if line.startswith("ERROR")]
    assert len(errors) == 1, outcome.errors
    expected = {
        "truncated": "is a truncated .npz",
        "html": "is an HTML or XML page",
        "missing": "does not exist",
        "wrong content": "y_test content SHA-256",
    }[kind]
    assert f"The MNIST file set by MNIST_LOCAL ({bad}) cannot be used: " in errors[0]
    assert expected in errors[0]
    assert "Fix or replace it, or unset MNIST_LOCAL" in errors[0]
    assert "Nothing was written (data/raw is unchanged)." in errors[0]
    assert {p: (project / p).read_bytes() for p in listing(project)} == state


def test_a_file_the_stage_would_never_read_is_refused(project: Path):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"]["sources"] = ["keras", "idx"]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    outcome = spawn(CHECK, project, MNIST_LOCAL=str(SUBSET))
    assert outcome.code == 2
    assert "does not list `local`, so the download stage would never read it" in outcome.stderr
    assert listing(project) == ["params.yaml"]


def test_a_good_file_with_no_data_raw_yet(project: Path):
    outcome = spawn(CHECK, project, MNIST_LOCAL=str(SUBSET))
    report("--check-local, good file, no data/raw", outcome, "unchanged")
    assert outcome.code == 0, outcome.stderr[-3000:]
    assert f"MNIST_LOCAL ({SUBSET}) is good MNIST" in outcome.stderr
    assert "data/raw/mnist.npz does not exist" in outcome.stderr
    assert "`dvc repro -f download` always reads it" in outcome.stderr
    assert listing(project) == ["params.yaml"]  # nothing written


def test_a_good_file_whose_arrays_data_raw_already_holds(project: Path, tmp_path: Path):
    raw = downloaded(project)  # sources.json: this subset, from MNIST_LOCAL
    mine = Path(shutil.copy(SUBSET, tmp_path / "my_copy.npz"))  # the same arrays, elsewhere
    before = {p: (raw / p).read_bytes() for p in listing(raw)}
    outcome = spawn(CHECK, project, MNIST_LOCAL=str(mine))
    report("--check-local, good file, same arrays", outcome, "unchanged")
    assert outcome.code == 0, outcome.stderr[-3000:]
    assert (
        "data/raw/mnist.npz already holds these arrays; dvc repro will not rerun download"
        in outcome.stderr
    )
    # A copy of the same bytes is the same file as far as the record goes.
    assert "data/raw/sources.json already names this file as their source" in outcome.stderr
    assert {p: (raw / p).read_bytes() for p in listing(raw)} == before

    # After a download from another source the record names that source, and says how to
    # make it name this file instead.
    sources = json.loads((raw / "sources.json").read_text())
    sources["mnist"] = {"source": "idx", "location": "https://mirror.example/mnist/"}
    (raw / "sources.json").write_text(json.dumps(sources))
    outcome = spawn(CHECK, project, MNIST_LOCAL=str(mine))
    assert outcome.code == 0, outcome.stderr[-3000:]
    assert "already holds these arrays; dvc repro will not rerun download for it" in (
        outcome.stderr
    )
    assert "DVC tracks neither MNIST_LOCAL nor the file's content" in outcome.stderr
    assert "keeps naming the previous source (idx: https://mirror.example/mnist/)" in (
        outcome.stderr
    )
    assert "Run `dvc repro -f download` to record this file as the source." in outcome.stderr


def test_make_repro_stops_before_dvc_on_a_bad_file(project: Path):
    """The Makefile's repro target runs the check first and stops there (set-up skipped)."""
    bad = bad_file(project.parent, "html")
    venv = ROOT / ".venv"
    if not (venv / "bin" / "python").exists():
        pytest.skip("no .venv for the Makefile")
    out = subprocess.run(
        ["make", "-f", str(ROOT / "Makefile"), "-o", "setup", f"VENV={venv}", "repro"],
        cwd=project,
        env={**stage_env(), "MNIST_LOCAL": str(bad)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert f"The MNIST file set by MNIST_LOCAL ({bad}) cannot be used" in out.stderr
    assert "dvc repro" not in out.stdout  # make echoes the dvc line only when it gets there
    assert listing(project) == ["params.yaml"]
