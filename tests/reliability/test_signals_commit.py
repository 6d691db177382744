"""A signal during a stage's final write: the write finishes, the stage exits 143 / 130, and its
last line says the outputs were written and DVC has not recorded them (and what does). A signal
just before that write: nothing written, and the line says so. Real signals to real download
subprocesses; the seam only pauses the real commit (after its first file is in place) or the
moment before it, so the test can send the signal there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.cbook
import numpy as np
import pytest
import yaml
from PIL import Image

from tests.conftest import make_repo, run

from .conftest import ROOT, Outcome, listing, report, stage_env

SUBSET = ROOT / "tests" / "fixtures" / "mnist_subset.npz"

# Loaded as `sitecustomize` by every Python process started with SEAM_DIR on PYTHONPATH.
# SEAM_MODE=inside: after a stage moves data/raw/mnist.npz into place (the first file of the
# download's commit), write this pid to SEAM_DIR/paused and wait for SEAM_DIR/sent, then let
# the commit go on. SEAM_MODE=before: the same pause just before `cli.committing()` starts.
SEAM = """
import contextlib, os, sys, time
_dir = os.environ.get("SEAM_DIR")
_mode = os.environ.get("SEAM_MODE")


def _pause():
    with open(os.path.join(_dir, "paused.tmp"), "w") as fh:
        fh.write(str(os.getpid()))
    os.replace(os.path.join(_dir, "paused.tmp"), os.path.join(_dir, "paused"))
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(_dir, "sent")) and time.monotonic() < deadline:
        time.sleep(0.02)


if _dir and _mode == "inside":
    _real_replace = os.replace

    def _replace(src, dst, *args, **kwargs):
        _real_replace(src, dst, *args, **kwargs)
        if (
            "intro_cnn.runtime.cli" in sys.modules
            and os.path.basename(os.fspath(dst)) == "mnist.npz"
            and not os.path.exists(os.path.join(_dir, "paused"))
        ):
            _pause()

    os.replace = _replace

if _dir and _mode == "before":
    import intro_cnn.runtime.cli as _cli

    _real_committing = _cli.committing

    @contextlib.contextmanager
    def _committing():
        _pause()
        with _real_committing():
            yield

    _cli.committing = _committing
"""


def seam_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "seam"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(SEAM)
    return folder


def signal_at_seam(proc: subprocess.Popen, seam: Path, sig: signal.Signals) -> int:
    """Wait until the stage pauses at the seam, send it ``sig``, then let it go on."""
    deadline = time.monotonic() + 120
    while not (seam / "paused").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            out, err = proc.communicate()
            err = (out or "") + (err or "")
            pytest.fail(f"the stage never reached the seam (exit {proc.returncode}):\n{err}")
        time.sleep(0.02)
    pid = int((seam / "paused").read_text())
    os.kill(pid, sig)
    time.sleep(0.2)  # the signal is handled at once; the commit is still paused
    (seam / "sent").touch()
    return pid


def image_png(path: Path) -> Path:
    Image.new("RGB", (64, 48), (200, 30, 30)).save(path, format="PNG")
    return path


@pytest.fixture
def project(tmp_path: Path, subset_hashes: dict[str, str]) -> Path:
    """A folder whose data/raw holds a first, complete download: the subset from
    ``data.local`` and a small red PNG as the demo image."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(
        local=str(SUBSET),
        content_sha256=subset_hashes,
        image_local=str(image_png(tmp_path / "red.png")),
        retries=0,
    )
    work = tmp_path / "project"
    work.mkdir()
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = subprocess.run(
        [sys.executable, "-m", "stages.download"],
        cwd=work,
        env=stage_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return work


def raw_state(folder: Path) -> dict[str, bytes]:
    raw = folder / "data" / "raw"
    return {name: (raw / name).read_bytes() for name in listing(raw)}


def assert_complete_new_set(raw: Path, local_copy: Path, hopper: Path) -> None:
    """The whole new set is in place: the arrays, the new image alone, the new provenance."""
    assert sorted(p.name for p in raw.iterdir()) == ["image", "mnist.npz", "sources.json"]
    with np.load(raw / "mnist.npz") as got, np.load(SUBSET) as want:
        assert sorted(got.files) == sorted(want.files)
        for name in want.files:
            np.testing.assert_array_equal(got[name], want[name])
    assert [p.name for p in (raw / "image").iterdir()] == ["image.jpg"]
    assert (raw / "image" / "image.jpg").read_bytes() == hopper.read_bytes()
    sources = json.loads((raw / "sources.json").read_text())
    assert sources["mnist"]["source"] == "local"
    assert sources["mnist"]["location"] == str(local_copy)
    assert sources["mnist"]["set_by"] == "MNIST_LOCAL"
    assert sources["image"]["url"] == str(hopper)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_the_final_write_finishes_it_and_says_so(
    project: Path, tmp_path: Path, sig: signal.Signals
):
    seam = seam_dir(tmp_path)
    local_copy = Path(shutil.copy(SUBSET, tmp_path / "my_mnist.npz"))
    hopper = Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    before = raw_state(project)
    env = stage_env(
        MNIST_LOCAL=str(local_copy),
        DEMO_IMAGE=str(hopper),
        SEAM_DIR=str(seam),
        SEAM_MODE="inside",
    )
    env["PYTHONPATH"] = f"{seam}{os.pathsep}{ROOT}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "stages.download"],
        cwd=project,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        pid = signal_at_seam(proc, seam, sig)
        err = proc.communicate(timeout=60)[1]
    finally:
        proc.kill()
    report(
        f"{sig.name} during download's final write",
        Outcome(proc.returncode, err, 0, set()),
        "complete new set",
    )
    assert pid == proc.pid
    assert proc.returncode == 128 + sig, err[-3000:]
    assert "Traceback" not in err
    last = [line for line in err.splitlines() if line.strip()][-1]
    how = "terminated (SIGTERM)" if sig == signal.SIGTERM else "interrupted (Ctrl-C)"
    assert last.startswith(f"ERROR stages: download: {how}, but only after its outputs were ")
    assert "completely written" in last
    assert "held until the last file was in place" in last
    assert "DVC has not recorded them (dvc.lock was not updated)" in last
    assert "run `dvc commit -f download` to record them as they are" in last
    assert "A plain `dvc repro download` would not" in last
    # It does not claim that nothing was written.
    assert "no partial outputs" not in err and "none was written" not in err
    raw = project / "data" / "raw"
    assert raw_state(project) != before  # the new set replaced the old one...
    assert_complete_new_set(raw, local_copy, hopper)  # ...whole, not half of it
    assert not [p for p in raw.rglob(".*")]  # no temporary files left behind


def test_a_signal_just_before_the_final_write_writes_nothing(project: Path, tmp_path: Path):
    seam = seam_dir(tmp_path)
    local_copy = Path(shutil.copy(SUBSET, tmp_path / "my_mnist.npz"))
    hopper = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    before = raw_state(project)
    env = stage_env(
        MNIST_LOCAL=str(local_copy),
        DEMO_IMAGE=str(hopper),
        SEAM_DIR=str(seam),
        SEAM_MODE="before",
    )
    env["PYTHONPATH"] = f"{seam}{os.pathsep}{ROOT}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "stages.download"],
        cwd=project,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        signal_at_seam(proc, seam, signal.SIGTERM)
        err = proc.communicate(timeout=60)[1]
    finally:
        proc.kill()
    report(
        "SIGTERM just before download's final write",
        Outcome(proc.returncode, err, 0, set()),
        "unchanged",
    )
    assert proc.returncode == 143, err[-3000:]
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("ERROR")]
    assert errors == [
        "ERROR stages: download: terminated (SIGTERM) before writing its outputs: none was "
        "written, no partial outputs were left."
    ]
    assert "dvc commit" not in err
    assert raw_state(project) == before  # the previous outputs, byte for byte


@pytest.mark.slow
def test_dvc_commit_records_what_an_interrupted_commit_wrote_and_plain_repro_does_not(
    tmp_path: Path, subset_hashes: dict[str, str]
):
    """The advice in the message, checked against DVC itself."""
    repo = make_repo(tmp_path / "repo", subset_hashes)
    run(["dvc", "repro", "download"], repo)
    first = (repo / "data/raw/sources.json").read_bytes()
    local_copy = Path(shutil.copy(SUBSET, tmp_path / "my_mnist.npz"))

    def interrupted_repro(attempt: str) -> str:
        seam = tmp_path / f"seam-{attempt}"
        seam.mkdir()
        (seam / "sitecustomize.py").write_text(SEAM)
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": str(seam),
            "SEAM_DIR": str(seam),
            "SEAM_MODE": "inside",
            "MNIST_LOCAL": str(local_copy),
        }
        env.pop("DVC_STAGE", None)
        proc = subprocess.Popen(
            ["dvc", "repro", "-f", "download"],  # MNIST_LOCAL alone would not rerun it
            cwd=repo,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            signal_at_seam(proc, seam, signal.SIGTERM)
            out, err = proc.communicate(timeout=120)
        finally:
            proc.kill()
        assert proc.returncode != 0, out + err
        assert "exited with 143" in out + err
        text = out + err
        assert "run `dvc commit -f download` to record them as they are" in text
        sources = json.loads((repo / "data/raw/sources.json").read_text())
        assert sources["mnist"]["location"] == str(local_copy)  # the new set is in place
        status = run(["dvc", "status", "download"], repo).stdout
        assert "changed outs" in status, status  # ...and DVC has not recorded it
        return text

    # A plain `dvc repro download` does not record the new set: it puts the old one back.
    interrupted_repro("1")
    restored = run(["dvc", "repro", "download"], repo)
    assert "is cached - skipping run, checking out outputs" in restored.stdout + restored.stderr
    assert (repo / "data/raw/sources.json").read_bytes() == first

    # `dvc commit -f download` records it as it is.
    interrupted_repro("2")
    run(["dvc", "commit", "-f", "download"], repo)
    assert "up to date" in run(["dvc", "status", "download"], repo).stdout
    sources = json.loads((repo / "data/raw/sources.json").read_text())
    assert sources["mnist"]["location"] == str(local_copy)
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    outs = {o["path"]: o["md5"] for o in lock["stages"]["download"]["outs"]}
    md5 = hashlib.md5((repo / "data/raw/sources.json").read_bytes()).hexdigest()
    assert outs["data/raw/sources.json"] == md5
