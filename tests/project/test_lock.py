"""The locked environment: requirements.lock is complete, hashed, fresh, and what is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from scripts import lock
from tests.conftest import ROOT

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) \\$", re.M)


def _pins(text: str) -> dict[str, str]:
    return {re.sub(r"[-_.]+", "-", n).lower(): v for n, v in PIN.findall(text)}


def _copy_project(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "lock.py", tmp_path / "scripts" / "lock.py")
    for name in ("pyproject.toml", "requirements.lock"):
        shutil.copy2(ROOT / name, tmp_path / name)
    return tmp_path


def _check(project: Path) -> subprocess.CompletedProcess:
    script = project / "scripts" / "lock.py"
    return subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, check=False
    )


def test_committed_lock_is_fresh():
    lock.check()  # raises LockError when pyproject.toml's dependencies moved on


def test_every_requirement_is_pinned_and_hashed():
    text = lock.LOCK.read_text(encoding="utf-8")
    entries = [e for e in re.split(r"\n(?=[A-Za-z0-9])", text) if not e.startswith("#")]
    assert len(entries) > 100
    for entry in entries:
        assert PIN.match(entry), f"not an exact pin: {entry.splitlines()[0]}"
        assert "--hash=sha256:" in entry, f"no hash: {entry.splitlines()[0]}"
    pins = _pins(text)
    assert {"tensorflow-cpu", "keras", "mlflow", "dvc", "setuptools", "uv"} <= set(pins)
    assert "tensorflow" not in pins  # the lock is for Linux x86-64: the CPU wheel


def test_installed_versions_are_the_locked_ones():
    """The environment the tests run in came from the lock (make setup)."""
    pins = _pins(lock.LOCK.read_text(encoding="utf-8"))
    for dist in ("tensorflow-cpu", "keras", "mlflow", "dvc", "numpy"):
        assert metadata.version(dist) == pins[dist], f"{dist}: rerun `make setup`"


def test_a_dependency_change_makes_the_lock_stale(tmp_path):
    project = _copy_project(tmp_path)
    assert _check(project).returncode == 0
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    # Tool settings are not lock inputs.
    pyproject.write_text(text.replace("line-length = 100", "line-length = 99"), encoding="utf-8")
    assert _check(project).returncode == 0
    pyproject.write_text(text.replace('"tqdm>=4.66",', '"tqdm>=4.66",\n    "rich>=13",'))
    out = _check(project)
    assert out.returncode == 1
    assert "requirements.lock is stale" in out.stderr and "make lock" in out.stderr
    (project / "requirements.lock").unlink()
    assert "requirements.lock is missing" in _check(project).stderr


def test_make_setup_installs_the_lock_with_hashes():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("$(STAMP): pyproject.toml requirements.lock\n", 1)[1].split("\n\n")[0]
    assert "scripts/lock.py --check" in recipe
    # uv from its own pin, hashes checked, then everything else with it, hashes checked.
    assert "scripts/lock.py --uv-pin > $(VENV)/uv-pin.txt" in recipe
    assert "$(PIP) install --quiet --require-hashes -r $(VENV)/uv-pin.txt" in recipe
    assert "$(UV) --require-hashes -r requirements.lock" in recipe
    assert "--no-deps" in recipe  # the project itself adds nothing unlocked
    assert "install --quiet --compile-bytecode --python $(BIN)/python" in makefile


def test_the_uv_pin_is_the_locks_entry_with_its_hashes(tmp_path):
    text = lock.LOCK.read_text(encoding="utf-8")
    pin = lock.uv_pin()
    assert pin.startswith(f"uv=={_pins(text)['uv']} \\\n") and pin in text
    assert pin.count("--hash=sha256:") >= 2 and not pin.rstrip().endswith("\\")
    project = _copy_project(tmp_path)
    body = (project / "requirements.lock").read_text(encoding="utf-8")
    (project / "requirements.lock").write_text(body.replace("\nuv==", "\nuv-renamed=="))
    out = subprocess.run(
        [sys.executable, str(project / "scripts" / "lock.py"), "--uv-pin"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 1 and "pins no uv" in out.stderr and "make lock" in out.stderr


@pytest.mark.slow
def test_make_lock_reproduces_the_committed_lock(tmp_path):
    """Re-resolving with unchanged inputs keeps every pin: the same file comes out (needs uv
    and the package index)."""
    project = _copy_project(tmp_path)
    out = subprocess.run(
        [sys.executable, str(project / "scripts" / "lock.py")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert (project / "requirements.lock").read_text() == lock.LOCK.read_text()
