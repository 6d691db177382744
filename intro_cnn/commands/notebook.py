"""``python -m intro_cnn.commands.notebook`` (``make notebook``): the companion notebook in
Jupyter Lab, on 127.0.0.1, a free port (or ``--port``) and a fresh token, whose address it
prints; Ctrl-C or SIGTERM stops the server and its kernels.

The work is :mod:`intro_cnn.notebook.server`'s; this module reads the command line.
"""

from __future__ import annotations

import logging
from pathlib import Path

from intro_cnn.runtime import cli


def main(argv: list[str] | None = None) -> None:
    """Serve notebooks/ in Jupyter Lab on 127.0.0.1 and print the notebook's address (with its
    token); Ctrl-C or SIGTERM stops it."""
    import argparse

    from intro_cnn.notebook import project, server

    parser = argparse.ArgumentParser(description=main.__doc__.split("\n\n")[0])
    parser.add_argument(
        "--port", type=int, default=0, help="serve on this port (default: a free one)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with cli.stage("notebook"):
        root = project.find_root(Path.cwd())
        port = args.port or server.free_port()
        server.serve(root / project.NOTEBOOKS_DIR, port, server.new_token(), project.NOTEBOOK.name)


if __name__ == "__main__":
    cli.run_main(main)
