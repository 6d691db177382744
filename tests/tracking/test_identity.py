"""Who the gate acts as on a shared server, and the sentence a refusal gets."""

from __future__ import annotations

import json
import os

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import PERMISSION_DENIED, UNAUTHENTICATED

from intro_cnn.runtime.errors import ConfigError
from intro_cnn.tracking import identity


def _file(tmp_path, data, mode=0o600):
    path = tmp_path / "ci-credentials.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    os.chmod(path, mode)
    return path


def test_the_gate_acts_as_the_identity_its_file_names(tmp_path, monkeypatch):
    path = _file(tmp_path, {"username": "ci", "password": "s3cret-pw"})
    monkeypatch.setenv(identity.GATE_CREDENTIALS_ENV, str(path))
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "member")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "a-member-token")
    assert identity.use_gate_identity() == "ci"
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "ci"
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "s3cret-pw"
    assert "MLFLOW_TRACKING_TOKEN" not in os.environ
    assert identity.who() == "user 'ci'"


def test_without_the_variable_the_environment_s_identity_stays(monkeypatch):
    monkeypatch.delenv(identity.GATE_CREDENTIALS_ENV, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "member")
    assert identity.use_gate_identity() is None
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "member"


@pytest.mark.parametrize(
    ("data", "mode", "said"),
    [
        ({"username": "ci", "password": "pw"}, 0o644, "readable by others (mode 644)"),
        ({"username": "ci"}, 0o600, 'expected JSON with "username" and "password"'),
        ("not json", 0o600, 'expected JSON with "username" and "password"'),
    ],
)
def test_a_bad_credentials_file_is_refused_naming_the_fix(tmp_path, data, mode, said):
    with pytest.raises(ConfigError, match="INTRO_CNN_GATE_CREDENTIALS") as exc:
        identity.read_credentials(_file(tmp_path, data, mode))
    assert said in str(exc.value) and "pw" not in str(exc.value).replace("password", "")


def test_a_missing_credentials_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="cannot read it"):
        identity.read_credentials(tmp_path / "nowhere.json")


def test_refusals_say_who_was_refused_what(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "member")
    denied = MlflowException("Permission denied", error_code=PERMISSION_DENIED)
    said = identity.refusal(denied, "move @champion")
    assert said.startswith("the tracking server refused user 'member' permission to move")
    assert "(HTTP 403)" in said and identity.GATE_CREDENTIALS_ENV in said
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    unknown = MlflowException("You are not authenticated", error_code=UNAUTHENTICATED)
    said = identity.refusal(unknown, "read the logged models")
    assert "did not accept an anonymous client" in said and "(HTTP 401)" in said
    assert identity.refusal(MlflowException("boom"), "x") is None
