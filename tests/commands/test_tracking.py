"""``python -m intro_cnn.commands.tracking --port N`` (``make ui``): the address it prints opens
the runs table in the project's saved view, metric columns shown, in a real MLflow UI and a
real browser."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from intro_cnn import tracking
from tests.conftest import BROWSER, ROOT, VENV_BIN, needs_browser

START_TIMEOUT = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dom(url: str, profile: Path) -> str:
    """The page as headless Chromium renders it after the UI's requests settle."""
    out = subprocess.run(
        [
            BROWSER,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--window-size=1600,900",
            "--virtual-time-budget=30000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    return out.stdout


def _headers(dom: str) -> set[str]:
    return set(re.findall(r'role="columnheader"[^>]*col-id="([^"]+)"', dom))


@pytest.mark.slow
@needs_browser
def test_make_uis_address_shows_the_accuracy_columns(tmp_path, monkeypatch, new_store):
    from mlflow import MlflowClient

    workdir = tmp_path / "project"
    workdir.mkdir()
    (workdir / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    uri = new_store(workdir / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = MlflowClient(uri)
    exp_id = tracking.experiment_id(client, uri, "intro-cnn")
    parent = client.create_run(exp_id, run_name="repro@abc").info.run_id
    client.log_metric(parent, "cnn_small/seeds/test_accuracy/mean", 0.9859)
    child = client.create_run(
        exp_id, run_name="cnn_small", tags={tracking.PARENT_TAG: parent}
    ).info.run_id
    client.log_param(child, "model", "cnn_small")
    client.log_metric(child, "test_accuracy", 0.9871)
    client.log_metric(child, "val_accuracy", 0.9885)
    for run_id in (child, parent):
        client.set_terminated(run_id)
    tracking.save_runs_view(client, exp_id, ["cnn_small"])

    port = _free_port()
    env = {"MLFLOW_TRACKING_URI": uri, "PATH": f"{VENV_BIN}:/usr/bin:/bin"}
    printed = subprocess.run(
        [sys.executable, "-m", "intro_cnn.commands.tracking", "--port", str(port)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    (url,) = re.findall(r"Open (http://\S+)", printed)
    assert url.startswith(f"http://127.0.0.1:{port}/#/experiments/{exp_id}/runs?"), url

    server = subprocess.Popen(
        [
            *(str(VENV_BIN / "mlflow"), "ui", "--backend-store-uri", uri),
            *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
        ],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline, "mlflow ui did not answer"
                assert server.poll() is None, "mlflow ui exited"
                time.sleep(1)
        viewed = _dom(url, tmp_path / "profile")
        plain = _dom(url.split("?")[0], tmp_path / "profile-plain")
    finally:
        server.terminate()
        server.wait(timeout=30)

    expected = {
        "metrics.`test_accuracy`",
        "metrics.`val_accuracy`",
        "metrics.`cnn_small/seeds/test_accuracy/mean`",
        "params.`model`",
    }
    assert expected <= _headers(viewed), sorted(_headers(viewed))
    assert "0.9859" in viewed  # the parent's row
    # Without the view the UI shows no metric column: the view is what shows them.
    assert _headers(plain) and not expected & _headers(plain), sorted(_headers(plain))
