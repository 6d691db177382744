"""Where a run's code came from: the git commit, whether the user changed it, the DVC
experiment and the host, as the tags every run carries."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from pathlib import Path

from intro_cnn.config import ROOT
from intro_cnn.tracking.tags import DVC_EXP_TAG

# Paths the pipeline itself rewrites: changes there do not make the user's code "dirty".
PIPELINE_WRITES = ("dvc.lock", "data", "models", "reports", ".gitignore", "*/.gitignore")
# What `dvc exp run -S` rewrites: the experiment's params, recorded in the run's params.
EXPERIMENT_WRITES = ("params.yaml",)


def _git(*args: str, cwd: Path) -> str:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def user_changes(cwd: Path = ROOT) -> list[str]:
    """Tracked files with uncommitted changes made by the user, not by the pipeline.

    ``dvc repro`` rewrites dvc.lock and its outputs, ``dvc exp run -S`` rewrites params.yaml
    (those values are the run's params): neither makes the code dirty.
    """
    excluded = PIPELINE_WRITES + (EXPERIMENT_WRITES if os.environ.get("DVC_EXP_NAME") else ())
    out = _git(
        "diff",
        "--name-only",
        "HEAD",
        "--",
        ".",
        *(f":(exclude,glob){p}" if "*" in p else f":(exclude){p}" for p in excluded),
        cwd=cwd,
    )
    return out.splitlines()


def provenance_tags(cwd: Path = ROOT) -> dict[str, str]:
    """Tags every run carries: code version, clean/dirty, DVC experiment name, host."""
    commit = _git("rev-parse", "HEAD", cwd=cwd)
    tags = {
        "git_commit": commit or "unknown",
        "git_dirty": str(bool(user_changes(cwd))).lower() if commit else "unknown",
        "host": socket.gethostname(),
        "python": platform.python_version(),
    }
    if commit:
        tags["mlflow.source.git.commit"] = commit
    if os.environ.get("DVC_EXP_NAME"):
        tags[DVC_EXP_TAG] = os.environ["DVC_EXP_NAME"]
    return tags
