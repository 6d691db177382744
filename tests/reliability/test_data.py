"""Explicit data means explicit; the demo image has a size limit; interrupted downloads leave
nothing behind. Real files, real stage subprocesses."""

from __future__ import annotations

import gzip
import hashlib
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from intro_cnn.config import IDX_FILES
from intro_cnn.runtime.files import npz_bytes
from intro_cnn.sources import raw_formats as rf

from .conftest import ROOT, Outcome, listing, report, spawn, stage_env

SUBSET = ROOT / "tests" / "fixtures" / "mnist_subset.npz"


@pytest.fixture
def project(tmp_path: Path, subset_hashes: dict[str, str]) -> Path:
    """params.yaml pinned to the test subset, with a good IDX mirror as a fallback source."""
    with np.load(SUBSET) as npz:
        arrays = {k: npz[k] for k in npz.files}
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    md5s = {}
    for name, fname in IDX_FILES.items():
        a = arrays[name]
        magic = {3: rf.IDX_IMAGES_MAGIC, 1: rf.IDX_LABELS_MAGIC}[a.ndim]
        head = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in a.shape)
        data = gzip.compress(head + a.tobytes(), mtime=0)
        (mirror / fname).write_bytes(data)
        md5s[fname] = hashlib.md5(data).hexdigest()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(
        sources=["local", "idx"],
        idx_base_url=str(mirror),
        idx_md5=md5s,
        content_sha256=subset_hashes,
        image_url="",
        retries=0,
        timeout_s=5,
    )
    work = tmp_path / "project"
    work.mkdir()
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (tmp_path / "good.npz").write_bytes(npz_bytes(arrays))
    return work


def test_default_chain_still_falls_back(project: Path):
    outcome = spawn(["stages.download"], project)
    assert outcome.code == 0, outcome.stderr[-2000:]
    assert "MNIST from source idx" in outcome.stderr


@pytest.mark.parametrize("kind", ["truncated", "html", "missing", "wrong content"])
@pytest.mark.parametrize("origin", ["MNIST_LOCAL", "data.local"])
def test_a_named_mnist_file_that_fails_is_an_error_not_a_fallback(
    project: Path, kind: str, origin: str
):
    good = (project.parent / "good.npz").read_bytes()
    bad = project.parent / f"{kind.replace(' ', '_')}.npz"
    if kind == "truncated":
        bad.write_bytes(good[: len(good) // 2])
    elif kind == "html":
        bad.write_bytes(b"<!DOCTYPE html><html><body>404</body></html>")
    elif kind == "wrong content":
        with np.load(project.parent / "good.npz") as npz:
            arrays = {k: npz[k] for k in npz.files}
        arrays["y_test"] = arrays["y_test"][::-1].copy()
        bad.write_bytes(npz_bytes(arrays))
    env = {}
    if origin == "MNIST_LOCAL":
        env["MNIST_LOCAL"] = str(bad)
    else:
        params = yaml.safe_load((project / "params.yaml").read_text())
        params["data"]["local"] = str(bad)
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    before = listing(project)
    outcome = spawn(["stages.download"], project, **env)
    report(f"{origin} = {kind} file", outcome, "unchanged" if listing(project) == before else "?")
    assert outcome.code == 1 and "Traceback" not in outcome.stderr
    assert f"The MNIST file set by {origin} ({bad})" in outcome.stderr
    assert f"unset {origin}" in outcome.stderr
    assert "MNIST from source idx" not in outcome.stderr  # no silent fallback
    expected = {
        "truncated": "is a truncated .npz",
        "html": "is an HTML or XML page",
        "missing": "does not exist",
        "wrong content": "y_test content SHA-256",
    }[kind]
    assert expected in outcome.stderr
    assert listing(project) == before


def big_png(path: Path, width: int, height: int) -> Path:
    """A real PNG of ``width x height`` that is small on disk (one colour, 1 bit per pixel)."""
    Image.new("1", (width, height), 1).save(path, format="PNG")
    return path


def test_a_huge_demo_image_is_refused_from_its_header(project: Path):
    """The issue's case: a half-megabyte PNG of 169 megapixels."""
    image = big_png(project.parent / "huge.png", 13000, 13000)
    before = listing(project)
    outcome = spawn(["stages.download"], project, DEMO_IMAGE=str(image))
    kb = image.stat().st_size / 1e3
    report(f"DEMO_IMAGE 13000x13000 PNG ({kb:.0f} kB)", outcome, "unchanged")
    assert outcome.code == 1
    assert "13000x13000 = 169.0 megapixels" in outcome.stderr
    assert "data.image_max_pixels (50 megapixels)" in outcome.stderr
    assert listing(project) == before


def test_the_limit_is_configurable_and_photos_pass(project: Path):
    photo = project.parent / "phone.jpg"
    Image.new("RGB", (4000, 3000), (120, 90, 60)).save(photo, format="JPEG")  # 12 MP
    assert rf.verify_image(photo, max_pixels=50_000_000)["size"] == [4000, 3000]
    with pytest.raises(rf.SourceError, match=r"4000x3000 = 12.0 megapixels, more than"):
        rf.verify_image(photo, max_pixels=10_000_000)


# --------------------------------------------------------------------------------------
# Interrupting a download (real signals to a running stage).
# --------------------------------------------------------------------------------------
@pytest.fixture
def hung_server():
    """Accepts connections and never answers: a download that hangs until interrupted."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_download_exits_with_one_line_and_writes_nothing(
    project: Path, hung_server: str, sig: signal.Signals
):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"].update(sources=["keras"], keras_url=f"{hung_server}/mnist.npz", timeout_s=60)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    before = listing(project)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "stages.download"],
        cwd=project,
        env=stage_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        lines = []
        for line in proc.stderr:  # wait until it is really downloading
            lines.append(line)
            if "Downloading" in line:
                break
        sent = time.perf_counter()
        proc.send_signal(sig)
        rest = proc.communicate(timeout=30)[1]
    finally:
        proc.kill()
    outcome = Outcome(proc.returncode, "".join(lines) + rest, time.perf_counter() - sent, set())
    report(f"{sig.name} during download", outcome, "unchanged")
    print(f"(started {sent - start:.2f} s before the signal)")
    assert proc.returncode == 128 + sig
    errors = [line for line in rest.splitlines() if line.strip()]
    assert len(errors) == 1 and "no partial outputs were left" in errors[0], errors
    assert "Traceback" not in rest
    assert listing(project) == before
