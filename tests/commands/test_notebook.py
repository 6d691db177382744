"""``python -m intro_cnn.commands.notebook`` (``make notebook``) as a user runs it: Jupyter Lab
on 127.0.0.1 with a token, serving the notebooks folder, stopped cleanly by a signal with its
kernels."""

from __future__ import annotations

import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests

from intro_cnn.notebook import project
from tests.conftest import ROOT

ADDRESS = re.compile(r"http://127\.0\.0\.1:(\d+)/lab/tree/(\S+)\?token=(\w+)")
START_TIMEOUT = 120
STOP_TIMEOUT = 30


def plain_copy(dst: Path) -> Path:
    """The files the command needs: the project markers and the notebook."""
    (dst / project.NOTEBOOKS_DIR).mkdir(parents=True)
    for name in project.ROOT_MARKERS:
        shutil.copy2(ROOT / name, dst / name)
    shutil.copy2(ROOT / project.NOTEBOOK, dst / project.NOTEBOOK)
    return dst


def read_lines(stream, into: queue.Queue) -> None:
    for line in stream:
        into.put(line)


def wait_for_address(lines: queue.Queue, proc: subprocess.Popen, seen: list[str]):
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        seen.append(line)
        found = ADDRESS.search(line)
        if found:
            return int(found.group(1)), found.group(2), found.group(3)
    raise AssertionError("no address printed:\n" + "".join(seen[-40:]))


def kernels_of(pid: int) -> list[psutil.Process]:
    """The kernel processes the server started (not its short-lived helpers)."""
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if "ipykernel_launcher" in child.cmdline():
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


def listening_addresses(pid: int, port: int) -> set[str]:
    return {
        c.laddr.ip
        for c in psutil.Process(pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_notebook_server_answers_with_its_token_and_stops_cleanly(tmp_path, stop):
    repo = plain_copy(tmp_path / "repo")
    proc = subprocess.Popen(
        [sys.executable, "-m", "intro_cnn.commands.notebook"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=read_lines, args=(proc.stdout, lines), daemon=True)
    reader.start()
    seen: list[str] = []
    kernels: list[psutil.Process] = []
    try:
        port, page, token = wait_for_address(lines, proc, seen)
        base = f"http://127.0.0.1:{port}"
        assert page == project.NOTEBOOK.name
        auth = {"Authorization": f"token {token}"}

        assert requests.get(f"{base}/api/status", params={"token": token}, timeout=10).ok
        assert requests.get(f"{base}/lab", params={"token": token}, timeout=10).status_code == 200
        assert requests.get(f"{base}/api/status", timeout=10).status_code == 403
        contents = requests.get(f"{base}/api/contents/{page}", headers=auth, timeout=10)
        assert contents.status_code == 200  # the root is the notebooks folder

        assert listening_addresses(proc.pid, port) == {"127.0.0.1"}
        with socket.socket() as other, pytest.raises(ConnectionRefusedError):
            other.connect(("127.0.0.2", port))  # another loopback address: nothing there

        # A kernel, as opening the notebook starts one: it must go with the server.
        kernel = requests.post(f"{base}/api/kernels", headers=auth, json={}, timeout=60)
        assert kernel.status_code == 201, kernel.text
        assert kernel.json()["name"] == "python3"
        deadline = time.monotonic() + 30
        while not kernels and time.monotonic() < deadline:
            kernels = kernels_of(proc.pid)
            time.sleep(0.2)
        assert len(kernels) == 1
        kernel_exe = kernels[0].cmdline()[0]
        assert Path(kernel_exe).parent == Path(sys.executable).parent  # the venv's python

        proc.send_signal(stop)
        assert proc.wait(timeout=STOP_TIMEOUT) == 0, "".join(seen[-40:])
        reader.join(timeout=10)
        seen += list(lines.queue)
        assert any("Shutting down 1 kernel" in line for line in seen)  # the server's clean-up
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _, left = psutil.wait_procs(kernels, timeout=10)
    assert not left, f"kernel processes left running: {left}"
