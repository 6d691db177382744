"""Jupyter Lab for the notebook, in this process: on 127.0.0.1 only, a free port, a fresh token,
the notebooks folder as its root, and a clean stop on Ctrl-C or SIGTERM.

The server runs in this Python (the project's virtual environment), so its default
``python3`` kernel is this interpreter and imports the project. The token is made here with
:mod:`secrets` and handed to the server in-process, never on a command line other users can
read. Both signals stop it through :meth:`ServerApp.stop`, which shuts the kernels down first.
"""

from __future__ import annotations

import logging
import signal
import socket
from pathlib import Path
from typing import Any
from urllib.parse import quote

log = logging.getLogger(__name__)

HOST = "127.0.0.1"  # never another interface: the notebook runs code
TOKEN_BYTES = 32


def free_port(host: str = HOST) -> int:
    """A port nothing listens on now (the system's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def new_token() -> str:
    import secrets

    return secrets.token_hex(TOKEN_BYTES)


def token_option(server_version: str) -> str:
    """The setting that takes the token: ``IdentityProvider.token`` from jupyter_server 2 on
    (``ServerApp.token`` is deprecated there), ``ServerApp.token`` before."""
    major = int(server_version.split(".")[0])
    return "IdentityProvider.token" if major >= 2 else "ServerApp.token"


def lab_argv(
    root_dir: Path, port: int, token: str, server_version: str, notebook: str
) -> list[str]:
    """Jupyter Lab's arguments: the address, no browser, the root folder, the token, and the
    notebook as its landing page; no other port if this one is taken (the address printed
    must be the one served)."""
    return [
        f"--ServerApp.ip={HOST}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.open_browser=False",
        # Containers often run as root; the server answers on 127.0.0.1 only, with a token.
        "--ServerApp.allow_root=True",
        f"--ServerApp.root_dir={root_dir}",
        f"--ServerApp.default_url=/lab/tree/{quote(notebook)}",
        f"--{token_option(server_version)}={token}",
    ]


def address(port: int, token: str, notebook: str) -> str:
    """The notebook's address in Jupyter Lab, token included."""
    return f"http://{HOST}:{port}/lab/tree/{quote(notebook)}?token={token}"


def serve(root_dir: Path, port: int, token: str, notebook: str) -> None:
    """Run Jupyter Lab until Ctrl-C or SIGTERM, then stop it (kernels first) and return."""
    import jupyter_server
    from jupyterlab.labapp import LabApp

    argv = lab_argv(root_dir, port, token, jupyter_server.__version__, notebook)
    server = LabApp.initialize_server(argv=argv)

    def stop(signum: int, frame: Any) -> None:
        log.info("Stopping Jupyter Lab (%s)", signal.Signals(signum).name)
        server.stop(from_signal=True)

    # After initialisation, which installs the server's own handlers: its SIGINT handler asks
    # for a confirmation on a terminal and, without one, leaves the kernels running.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)

    def announce() -> None:  # once the loop runs: the server is listening
        log.info("Jupyter Lab on %s (Ctrl-C stops it):\n  %s", HOST, address(port, token, notebook))

    server.io_loop.add_callback(announce)
    server.start()
