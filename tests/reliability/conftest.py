"""Helpers for the reliability suite: run a stage as a user would, and report how it failed.

Every case prints one line (case, exit code, first error line, seconds to fail, outputs
afterwards) for the issue's table; timings are printed, never asserted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Modules a stage must not have imported before it rejects its params.
HEAVY = ("tensorflow", "keras", "mlflow", "matplotlib", "scipy", "sqlalchemy")


@dataclass
class Outcome:
    code: int
    stderr: str
    seconds: float
    imported: set[str]

    @property
    def errors(self) -> list[str]:
        return [
            line
            for line in self.stderr.splitlines()
            if line and not line.startswith("import time:") and not line.startswith("I0000")
        ]

    @property
    def heavy(self) -> list[str]:
        return sorted(m for m in self.imported if m.split(".")[0] in HEAVY)


def stage_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MNIST_LOCAL", None)
    env.pop("DEMO_IMAGE", None)
    env.update(extra)
    return env


def spawn(args: list[str], cwd: Path, timeout: float = 120, **env: str) -> Outcome:
    """``python -X importtime -m stages.<args>`` in ``cwd``: exit code, stderr, seconds, and
    which modules it imported (from ``-X importtime``)."""
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", *args],
        cwd=cwd,
        env=stage_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    seconds = time.perf_counter() - start
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in out.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return Outcome(out.returncode, out.stderr, seconds, imported)


def listing(folder: Path) -> list[str]:
    """Every file under ``folder`` (relative), to compare before and after a failure."""
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and ".git" not in p.parts
    )


def report(case: str, outcome: Outcome, outputs: str) -> None:
    errors = [line for line in outcome.errors if "ERROR" in line or line.startswith("gate:")]
    first = (errors or outcome.errors or [""])[0]
    print(
        f"\nTABLE | {case} | exit {outcome.code} | {first[:160]} | "
        f"{outcome.seconds:.2f} s | {outputs}"
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty project folder holding only a copy of params.yaml."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


@pytest.fixture
def foreign_http() -> Iterator[str]:
    """A plain HTTP server that is not MLflow (a wrong port serving something else)."""
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
