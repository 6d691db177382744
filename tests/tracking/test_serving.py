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
    assert serving.check_input(sheet[np.newaxis]).shape == (1, 28, 28, 1)
    unit = serving.check_input(raw / 255.0, serving.UNIT)
    np.testing.assert_allclose(unit, plain)


@pytest.mark.parametrize(
    ("values", "pixels", "preprocess", "message"),
    [
        (np.full((1, 28, 28), 300.0), "uint8", True, "whole numbers 0-255"),
        (np.full((1, 28, 28), 0.5), "uint8", True, 'send params {"pixels": "unit"}'),
        (np.full((1, 28, 28), -1.0), "uint8", True, "whole numbers 0-255"),
        (np.full((1, 28, 28), 255.0), "unit", True, "look like raw 0-255 pixels"),
        (np.zeros((1, 28, 28, 1)), "unit", True, r"channel axis: drop it \(shape \(1, 28, 28\)\)"),
        (np.zeros((2, 28, 28, 3)), "uint8", True, "convert them to greyscale"),
        (np.zeros((28, 28)), "uint8", True, r"inside a list, \[image\], for shape \(1, 28, 28\)"),
        (np.zeros(784), "uint8", True, r"got 1 axes \(784,\): send a list of images"),
        (np.zeros(0), "uint8", True, "empty batch: send at least one image"),
        (np.zeros((1, 1, 28)), "uint8", True, "send real images"),
        (np.zeros((1, 1025, 30)), "uint8", True, "larger than the 1024-pixel side"),
        (np.zeros((17, 1024, 1024), np.float32), "uint8", True, "send them in smaller batches"),
        (np.zeros((1, 32, 32)), "unit", True, "must be 28×28"),
        (np.zeros((1, 64, 64)), "uint8", False, "preprocess=True"),
        (np.zeros((0, 28, 28)), "uint8", True, "empty batch: send at least one image"),
        (np.full((1, 28, 28), np.nan), "unit", True, "NaN"),
        (np.zeros((1, 28, 28)), "float", True, "must be one of"),
        (np.zeros((1, 28, 28)), "uint8", True, "image 0: the image is blank"),
    ],
)
def test_bad_input_is_refused_with_the_fix(values, pixels, preprocess, message):
    with pytest.raises(serving.InputError, match=message):
        serving.check_input(values, pixels, preprocess)


def test_signature_declares_the_answer_and_the_pixels_param_but_leaves_input_to_the_checks():
    sig = serving.signature().to_dict()
    assert sig["inputs"] is None  # MLflow's schema check would answer wrong shapes first
    assert "[-1, 10]" in sig["outputs"]
    assert '"pixels"' in sig["params"] and '"uint8"' in sig["params"]


# --------------------------------------------------------------------------------------
# Slow: logged, registered, served over HTTP
# --------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post_raw(url: str, payload: dict) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def post(url: str, payload: dict) -> tuple[int, dict]:
    status, body = post_raw(url, payload)
    return status, json.loads(body)


MAX_ERROR_BYTES = 2048
# Wrong shapes, each with what the answer must say to send instead.
WRONG_SHAPES = [
    (np.zeros((28, 28)), "inside a list, [image], for shape (1, 28, 28)"),
    (np.zeros(784), "send a list of images"),
    (np.zeros((1, 28, 28, 1)), "with a channel axis: drop it (shape (1, 28, 28))"),
    (np.zeros(0), "empty batch: send at least one image"),
    (np.zeros((1, serving.MAX_SIDE + 1, 40)), "scale them down"),
]


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
        # Each answer is the project's sentence alone: no dump of the input before it.
        for values, message in WRONG_SHAPES:
            status, raw_body = post_raw(url, {"inputs": values.astype(int).tolist()})
            assert status == 400, raw_body[:300]
            assert len(raw_body) < MAX_ERROR_BYTES, (len(raw_body), raw_body[:300])
            text = json.loads(raw_body)["message"]
            assert message in text and text.startswith(("expected", "the images are")), text
        start = time.monotonic()
        status, body = post(url, {"inputs": [np.zeros((4000, 4000), np.uint8).tolist()]})
        seconds = time.monotonic() - start
        assert status == 400 and "4000×4000, larger than the 1024-pixel side" in body["message"]
        print(f"4000×4000 image refused in {seconds:.1f} s")
