"""Tests of the served model (intro_cnn/tracking/serving.py): input checks, and `mlflow models
serve` over real HTTP answering good input and refusing bad input with a 400 that says what to
send."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from intro_cnn.data import digits
from intro_cnn.tracking import serving
from tests.conftest import VENV_BIN
from tests.data.test_digits import as_paper


# --------------------------------------------------------------------------------------
# Quick: the checks themselves
# --------------------------------------------------------------------------------------
def test_raw_mnist_images_become_the_network_input(subset):
    raw = subset["x_test"][:4]
    plain = serving.check_input(raw, serving.RAW, preprocess=False)
    np.testing.assert_array_equal(plain, digits.as_tensor(raw / 255.0))
    bundled = serving.check_input(raw.astype(np.float32), serving.RAW)
    assert bundled.shape == (4, 28, 28, 1)
    # Any size and polarity with the recipe bundled: a photo-like sheet.
    sheet = np.round(as_paper(raw[0]) * 255)
    assert serving.check_input(sheet).shape == (1, 28, 28, 1)
    unit = serving.check_input(raw / 255.0, serving.UNIT)
    np.testing.assert_allclose(unit, plain)


@pytest.mark.parametrize(
    ("values", "pixels", "preprocess", "message"),
    [
        (np.full((1, 28, 28), 300.0), "uint8", True, "whole numbers 0-255"),
        (np.full((1, 28, 28), 0.5), "uint8", True, 'send params {"pixels": "unit"}'),
        (np.full((1, 28, 28), -1.0), "uint8", True, "whole numbers 0-255"),
        (np.full((1, 28, 28), 255.0), "unit", True, "look like raw 0-255 pixels"),
        (np.zeros((1, 28, 28, 1)), "unit", True, r"shape \(N, H, W\)"),
        (np.zeros((1, 32, 32)), "unit", True, "must be 28×28"),
        (np.zeros((1, 64, 64)), "uint8", False, "preprocess=True"),
        (np.zeros((0, 28, 28)), "uint8", True, "at least one image"),
        (np.full((1, 28, 28), np.nan), "unit", True, "NaN"),
        (np.zeros((1, 28, 28)), "float", True, "must be one of"),
        (np.zeros((1, 28, 28)), "uint8", True, "image 0: the image is blank"),
    ],
)
def test_bad_input_is_refused_with_the_fix(values, pixels, preprocess, message):
    with pytest.raises(serving.InputError, match=message):
        serving.check_input(values, pixels, preprocess)


def test_signature_declares_both_forms():
    sig = serving.signature().to_dict()
    assert "float32" in sig["inputs"] and "[-1, -1, -1]" in sig["inputs"]
    assert '"pixels"' in sig["params"] and '"uint8"' in sig["params"]


# --------------------------------------------------------------------------------------
# Slow: logged, registered, served over HTTP
# --------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@contextlib.contextmanager
def served(model_uri: str, env: dict[str, str], log: Path):
    port = free_port()
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [
                str(VENV_BIN / "mlflow"),
                "models",
                "serve",
                "-m",
                model_uri,
                "--env-manager",
                "local",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: uvicorn's workers stop with it
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"mlflow models serve did not start:\n{log.read_text()[-3000:]}"
                )
            time.sleep(0.5)
        yield f"{url}/invocations"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.slow
def test_served_model_checks_its_input_over_http(
    tmp_path, tiny_cnn, subset, monkeypatch, new_store
):
    import keras
    import mlflow

    uri = new_store(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("serving-test")
    with mlflow.start_run():
        info = serving.log_model(tiny_cnn, registered_model_name="intro-cnn-test")
    assert info.signature.params is not None
    model_uri = "models:/intro-cnn-test/1"
    # Its environment names what serving it imports, at the versions that logged it.
    requirements = Path(mlflow.artifacts.download_artifacts(f"{model_uri}/requirements.txt"))
    pins = requirements.read_text().split()
    assert set(pins) == set(serving.pip_requirements())
    assert {p.split("==")[0] for p in pins} >= {"mlflow", "keras", "numpy", "pillow"}
    assert any(p.startswith(serving.TENSORFLOW_DISTRIBUTIONS) for p in pins)

    raw = subset["x_test"][:8]
    model = keras.saving.load_model(tiny_cnn, compile=False)
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    with served(model_uri, env, tmp_path / "serve.log") as url:
        # The normalised tensor: exactly what Keras answers.
        status, body = post(url, {"inputs": (raw / 255.0).tolist(), "params": {"pixels": "unit"}})
        assert status == 200, body
        expected = model.predict(digits.as_tensor(raw / 255.0), verbose=0)
        np.testing.assert_allclose(np.array(body["predictions"]), expected, atol=1e-5)
        # Raw 0-255 images (the default), through the bundled recipe.
        status, body = post(url, {"inputs": raw.tolist()})
        assert status == 200, body
        probs = np.array(body["predictions"])
        assert probs.shape == (8, 10) and np.allclose(probs.sum(1), 1, atol=1e-4)
        # A photo-sized sheet, dark ink on light paper.
        sheet = np.round(as_paper(raw[0]) * 255).astype(int)
        status, body = post(url, {"inputs": [sheet.tolist()]})
        assert status == 200, body
        # Refused, with the reason and the fix in the message.
        bad = [
            ({"inputs": (raw / 255.0).tolist()}, 'send params {\\"pixels\\": \\"unit\\"}'),
            ({"inputs": raw.tolist(), "params": {"pixels": "unit"}}, "look like raw 0-255"),
            ({"inputs": (raw.astype(float) * 2).tolist()}, "whole numbers 0-255"),
            ({"inputs": (raw[..., None] / 255.0).tolist(), "params": {"pixels": "unit"}}, "shape"),
        ]
        for payload, message in bad:
            status, body = post(url, payload)
            assert status == 400, body
            assert message.replace('\\"', '"') in body["message"], body["message"][-500:]
