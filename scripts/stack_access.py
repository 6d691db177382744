"""Who may do what on the team stack (scripts/stack.py): MLflow's users and permissions, and
the S3 keys by role.

- **admin**: MLflow's admin (users, permissions, deletes); S3: everything, buckets included.
- **member**: MLflow: reads everything (``default_permission = READ``) and has EDIT on the
  project's experiment, so logs runs but deletes none; S3: reads, writes and lists the
  objects of the DVC remote's bucket.
- **ci**: MLflow: reads everything and has MANAGE on each ``intro-cnn-<model>``, so registers
  versions and moves ``@champion``; S3: no keys.

Trainings register nothing (only the gate does), and registering a version or moving an alias
needs EDIT on the registered model, so only the CI identity the gate runs as can change what
is served. Every MLflow request needs a user: an anonymous one gets HTTP 401.

Passwords and keys are generated once per state folder and kept in ``secrets.json`` (mode
0600); the CI's own pair also in ``ci-credentials.json`` (mode 0600), the file the gate reads
(``INTRO_CNN_GATE_CREDENTIALS``). None is passed in an argument list: the servers get theirs
through the environment or a mode-0600 file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

ADMIN, MEMBER, CI = "admin", "member", "ci"
DEFAULT_PERMISSION = "READ"
MEMBER_ON_EXPERIMENT = "EDIT"
CI_ON_REGISTERED_MODELS = "MANAGE"
# Seconds a worker of the server trusts a username and password it has checked. Without it
# every request pays a scrypt hash check (about 0.1 s of the server's CPU here); a password
# changed or a user deleted through the API may still pass on the other worker this long.
AUTH_CACHE_TTL_S = 60
AUTH_DB = "mlflow_auth"  # MLflow's users and permissions, beside the tracking database
CI_CREDENTIALS_FILE = "ci-credentials.json"
S3_OBJECT_ACTIONS = ("Read", "Write", "List", "Tagging")


def new_secrets(found: dict[str, str]) -> dict[str, str]:
    """``found`` with every missing password and key generated (a state folder made before a
    secret existed gains it; none already there changes)."""
    wanted = {
        "postgres_password": lambda: secrets.token_urlsafe(18),
        "mlflow_admin_password": lambda: secrets.token_urlsafe(18),
        "mlflow_member_password": lambda: secrets.token_urlsafe(18),
        "mlflow_ci_password": lambda: secrets.token_urlsafe(18),
        "mlflow_flask_secret_key": lambda: secrets.token_urlsafe(32),
        "s3_admin_access_key_id": lambda: "admin" + secrets.token_hex(8),
        "s3_admin_secret_access_key": lambda: secrets.token_urlsafe(30),
        "s3_member_access_key_id": lambda: "member" + secrets.token_hex(8),
        "s3_member_secret_access_key": lambda: secrets.token_urlsafe(30),
    }
    return {**{key: make() for key, make in wanted.items() if key not in found}, **found}


def auth_config(database_uri: str) -> str:
    """MLflow's authentication app's configuration (``MLFLOW_AUTH_CONFIG_PATH``). It holds no
    secret: the database password comes from ``PGPASSWORD``, the admin's from
    ``MLFLOW_AUTH_ADMIN_PASSWORD``."""
    return (
        "[mlflow]\n"
        f"default_permission = {DEFAULT_PERMISSION}\n"
        f"database_uri = {database_uri}\n"
        f"admin_username = {ADMIN}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        f"auth_cache_ttl_seconds = {AUTH_CACHE_TTL_S}\n"
    )


def server_env(secret: dict[str, str], config_path: str) -> dict[str, str]:
    """The environment ``mlflow server --app-name basic-auth`` starts with."""
    return {
        "PGPASSWORD": secret["postgres_password"],
        "MLFLOW_AUTH_CONFIG_PATH": config_path,
        "MLFLOW_AUTH_ADMIN_PASSWORD": secret["mlflow_admin_password"],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secret["mlflow_flask_secret_key"],
    }


def member_env(secret: dict[str, str]) -> dict[str, str]:
    """What a teammate's shell needs to act as a member (``scripts/stack.py env``)."""
    return {
        "MLFLOW_TRACKING_USERNAME": MEMBER,
        "MLFLOW_TRACKING_PASSWORD": secret["mlflow_member_password"],
        "AWS_ACCESS_KEY_ID": secret["s3_member_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": secret["s3_member_secret_access_key"],
    }


def ci_credentials(secret: dict[str, str]) -> dict[str, str]:
    return {"username": CI, "password": secret["mlflow_ci_password"]}


def s3_identities(secret: dict[str, str], bucket: str) -> dict[str, Any]:
    """SeaweedFS' ``-s3.config``: the admin may do anything; a member only reads, writes and
    lists the objects of ``bucket`` (no bucket is created or deleted with those keys)."""

    def identity(name: str, actions: list[str]) -> dict[str, Any]:
        return {
            "name": name,
            "credentials": [
                {
                    "accessKey": secret[f"s3_{name}_access_key_id"],
                    "secretKey": secret[f"s3_{name}_secret_access_key"],
                }
            ],
            "actions": actions,
        }

    return {
        "identities": [
            identity(ADMIN, ["Admin", *S3_OBJECT_ACTIONS]),
            identity(MEMBER, [f"{action}:{bucket}" for action in S3_OBJECT_ACTIONS]),
        ]
    }


@contextlib.contextmanager
def acting_as(username: str, password: str) -> Iterator[None]:
    """MLflow's clients in this process act as ``username`` inside the block."""
    keys = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
    saved = {key: os.environ.pop(key, None) for key in keys}
    os.environ[keys[0]], os.environ[keys[1]] = username, password
    try:
        yield
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None)
            if value is not None:
                os.environ[key] = value


def provision(
    url: str, secret: dict[str, str], experiment: str, registered_models: Iterable[str]
) -> None:
    """As the admin, make the users and grants of the table above (idempotent): the member and
    CI users, the project's experiment with EDIT for the member, and one registered model per
    network with MANAGE for the CI (made here, so no member can create and own one first)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    with warnings.catch_warnings():  # starlette's deprecation notice, of no use to the user
        warnings.simplefilter("ignore", DeprecationWarning)
        from mlflow.server import get_app_client

    def grant(user: str, kind: str, resource: str, permission: str) -> None:
        """Grant, or set again at this level if the user already has a grant there."""
        try:
            auth.grant_user_permission(user, kind, resource, permission)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            auth.revoke_user_permission(user, kind, resource)
            auth.grant_user_permission(user, kind, resource, permission)

    with acting_as(ADMIN, secret["mlflow_admin_password"]):
        auth = get_app_client("basic-auth", tracking_uri=url)
        client = MlflowClient(url)
        for user in (MEMBER, CI):
            try:
                auth.get_user(user)
            except MlflowException:
                auth.create_user(user, secret[f"mlflow_{user}_password"])
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment)
        grant(MEMBER, "experiment", experiment_id, MEMBER_ON_EXPERIMENT)
        for name in registered_models:
            try:
                client.get_registered_model(name)
            except MlflowException:
                client.create_registered_model(name)
            grant(CI, "registered_model", name, CI_ON_REGISTERED_MODELS)
