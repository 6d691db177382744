"""Who the project's MLflow calls act as on a server with MLflow's authentication app, and
what a refusal (HTTP 401 or 403) says to the user.

Every MLflow client reads its identity from ``MLFLOW_TRACKING_USERNAME`` and
``MLFLOW_TRACKING_PASSWORD`` (or ``MLFLOW_TRACKING_TOKEN``). The gate alone may act as another
identity, the team's CI: :data:`GATE_CREDENTIALS_ENV` names a file holding its username and
password (``scripts/stack.py`` writes one, mode 0600), so the CI's password is never in an
argument list, a log or the member's shell. Nothing here runs at import time.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from intro_cnn.runtime.errors import ConfigError
from intro_cnn.tracking.mlflow_store import CREDENTIALS_FIX

GATE_CREDENTIALS_ENV = "INTRO_CNN_GATE_CREDENTIALS"
USERNAME_ENV = "MLFLOW_TRACKING_USERNAME"
PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"
GATE_FIX = (
    f"on a shared server only the CI identity may register versions and move @champion: run "
    f"the gate with {GATE_CREDENTIALS_ENV} naming the CI's credentials file (docs/team.md), or "
    "ask the server's admin for EDIT on the registered model"
)


def who() -> str:
    """The identity the MLflow client presents, as a user reads it."""
    if os.environ.get("MLFLOW_TRACKING_TOKEN"):
        return "the token in MLFLOW_TRACKING_TOKEN"
    user = os.environ.get(USERNAME_ENV)
    return f"user {user!r}" if user else "an anonymous client (no MLFLOW_TRACKING_USERNAME)"


def refusal(exc: Exception, attempt: str, fix: str = GATE_FIX) -> str | None:
    """The project's sentence for an MLflow error that is the server refusing ``attempt``
    (HTTP 401: who you are; HTTP 403: what you may do); None for any other error."""
    code = getattr(exc, "error_code", "")
    if code == "UNAUTHENTICATED" or "error code 401" in str(exc):
        return (
            f"the tracking server did not accept {who()} when trying to {attempt} (HTTP 401): "
            f"{CREDENTIALS_FIX}"
        )
    if code == "PERMISSION_DENIED" or "error code 403" in str(exc):
        return f"the tracking server refused {who()} permission to {attempt} (HTTP 403): {fix}"
    return None


def read_credentials(path: Path) -> dict[str, str]:
    """``{"username": ..., "password": ...}`` from a JSON file only its owner can read.

    Raises :class:`ConfigError` naming the file and the fix: missing, readable by others,
    not JSON, or without both fields."""
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(
            f"{GATE_CREDENTIALS_ENV}={path}: cannot read it ({exc.strerror}); point it at the "
            "CI's credentials file (scripts/stack.py writes ci-credentials.json in its state "
            "folder)"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{GATE_CREDENTIALS_ENV}={path}: the file is readable by others (mode "
            f"{stat.S_IMODE(mode):o}); it holds a password: chmod 600 {path}"
        )
    try:
        data: Any = json.loads(text)
    except ValueError:
        data = None
    if not (isinstance(data, dict) and data.get("username") and data.get("password")):
        raise ConfigError(
            f'{GATE_CREDENTIALS_ENV}={path}: expected JSON with "username" and "password"'
        )
    return {"username": str(data["username"]), "password": str(data["password"])}


def use_gate_identity() -> str | None:
    """When :data:`GATE_CREDENTIALS_ENV` is set, make this process's MLflow calls act as the
    identity it names; return that username (None: the environment's identity stays)."""
    path = os.environ.get(GATE_CREDENTIALS_ENV)
    if not path:
        return None
    found = read_credentials(Path(path))
    os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
    os.environ[USERNAME_ENV] = found["username"]
    os.environ[PASSWORD_ENV] = found["password"]
    return found["username"]
