"""Jupyter Lab's settings for the notebook (the server itself: tests/commands/test_notebook.py)."""

from __future__ import annotations

import socket
from pathlib import Path

from intro_cnn.notebook import server


def test_the_token_option_follows_the_server_version():
    assert server.token_option("2.21.1") == "IdentityProvider.token"
    assert server.token_option("1.24.0") == "ServerApp.token"


def test_the_server_listens_on_loopback_only_with_the_token():
    argv = server.lab_argv(Path("/p/notebooks"), 8123, "abc", "2.21.1", "n b.ipynb")
    assert "--ServerApp.ip=127.0.0.1" in argv
    assert "--ServerApp.port=8123" in argv and "--ServerApp.port_retries=0" in argv
    assert "--ServerApp.open_browser=False" in argv
    assert "--ServerApp.root_dir=/p/notebooks" in argv
    assert "--IdentityProvider.token=abc" in argv
    assert "--ServerApp.default_url=/lab/tree/n%20b.ipynb" in argv


def test_the_address_names_the_notebook_and_the_token():
    url = server.address(8123, "abc", "n.ipynb")
    assert url == "http://127.0.0.1:8123/lab/tree/n.ipynb?token=abc"


def test_tokens_are_fresh_and_long():
    a, b = server.new_token(), server.new_token()
    assert a != b and len(a) == 2 * server.TOKEN_BYTES


def test_a_free_port_can_be_bound():
    port = server.free_port()
    with socket.socket() as sock:
        sock.bind((server.HOST, port))
