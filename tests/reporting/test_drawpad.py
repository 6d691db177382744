"""Tests of the report's drawing pad: weights read from the .keras file, the section as the report
renders it, and (slow) the page's own script in headless Chromium against Keras."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

from intro_cnn import i18n
from intro_cnn.data import digits
from intro_cnn.reporting import drawpad
from intro_cnn.reporting import report as rp
from tests.conftest import needs_browser, run_in_browser
from tests.data.test_digits import as_paper
from tests.reporting.test_report import external_references, fake_inputs

# The page computes in float32 with float64 sums; Keras (float32 model) sums in float32.
PROB_TOLERANCE = 1e-4
MIN_AGREEMENT = 0.995


def pad_page(tmp_path: Path, model_file: Path, lang: str = "es") -> str:
    """The report page (fake figures and tables, the real pad for ``model_file``)."""
    inputs = dataclasses.replace(
        fake_inputs(tmp_path),
        pad_layers=drawpad.read_keras_file(model_file),
        pad_assets=drawpad.read_assets(),
    )
    return rp.build_html(inputs, lang)


def b64_floats(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode()


# --------------------------------------------------------------------------------------
# Quick
# --------------------------------------------------------------------------------------
def test_weights_read_without_keras_match_keras(tiny_cnn):
    import keras

    layers = drawpad.read_keras_file(tiny_cnn)
    assert [la.kind for la in layers] == [
        "conv",
        "pool",
        "conv",
        "pool",
        "flatten",
        "dense",
        "dense",
    ]
    model = keras.saving.load_model(tiny_cnn, compile=False)
    ours = [w for la in layers for w in la.weights]
    theirs = model.get_weights()
    assert len(ours) == len(theirs) == 8
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)
    assert [la.activation for la in layers if la.kind != "pool"][-1] == "softmax"


def test_models_the_page_cannot_run_are_refused(tmp_path):
    from intro_cnn.models import build_model

    path = tmp_path / "mlp.keras"
    build_model("mlp").save(path)
    with pytest.raises(drawpad.PadError, match="Dropout"):
        drawpad.read_keras_file(path)
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(drawpad.PadError, match=r"not a readable \.keras file"):
        drawpad.read_keras_file(bad)


def test_snake_case_names_match_keras():
    assert drawpad._snake("Conv2D") == "conv2d"
    assert drawpad._snake("MaxPooling2D") == "max_pooling2d"
    assert drawpad._snake("InputLayer") == "input_layer"


@pytest.mark.parametrize("lang", ["es", "en"])
def test_the_pad_is_hidden_without_javascript_and_self_contained(tmp_path, tiny_cnn, lang):
    page = pad_page(tmp_path, tiny_cnn, lang)
    assert f'<section id="{drawpad.SECTION_ID}" hidden>' in page
    assert i18n.text("pad", "title", lang) in page
    # The only scripts are inline: the data block and the pad's code, nothing fetched.
    assert page.count("<script") == 2
    assert external_references(page) == []
    # The pad sits after the networks section, and the weights are embedded exactly.
    assert page.index('<section id="networks">') < page.index('<section id="pad"')
    data = json.loads(re.search(r'id="pad-model">(.*?)</script>', page, flags=re.S).group(1))
    assert data["recipe"]["box"] == digits.BOX
    kernel = np.frombuffer(base64.b64decode(data["layers"][0]["kernel"]), dtype="<f4")
    np.testing.assert_array_equal(kernel, drawpad.read_keras_file(tiny_cnn)[0].weights[0].ravel())


def test_no_pad_without_its_model(tmp_path):
    page = rp.build_html(fake_inputs(tmp_path), "es")
    assert "<script" not in page and 'id="pad"' not in page


# --------------------------------------------------------------------------------------
# Slow: the page's own script in headless Chromium
# --------------------------------------------------------------------------------------
@pytest.mark.slow
@needs_browser
def test_page_forward_pass_agrees_with_keras(tmp_path, tiny_cnn, subset):
    import keras

    images = np.concatenate([subset["x_test"], subset["x_train"][:200]])  # 400 real digits
    x = images.astype(np.float32) / np.float32(255.0)
    model = keras.saving.load_model(tiny_cnn, compile=False)
    expected = model.predict(digits.as_tensor(x), verbose=0)
    conv1 = keras.Model(model.input, model.get_layer("conv1").output)
    expected_maps = np.asarray(conv1(digits.as_tensor(x[:5])))

    script = (
        f"const bytes = Uint8Array.from(atob('{b64_floats(x)}'), c => c.charCodeAt(0));"
        "const all = new Float32Array(bytes.buffer); const probs = []; let maps = [];"
        "for (let i = 0; i < all.length / 784; i++) {"
        "  const r = DigitPad.forward(all.subarray(i * 784, (i + 1) * 784));"
        "  probs.push(r.probabilities);"
        "  if (i < 5) maps.push(Array.from(r.maps[0].values));"
        "}"
        "return {probs, maps, hidden: document.getElementById('pad').hidden};"
    )
    result = run_in_browser(pad_page(tmp_path, tiny_cnn), script, tmp_path)
    page_probs = np.array(result["probs"])
    assert page_probs.shape == (400, 10)
    agreement = float((page_probs.argmax(1) == expected.argmax(1)).mean())
    worst = float(np.abs(page_probs - expected).max())
    print(f"page vs Keras on {len(x)} digits: {agreement:.2%} agree, max |Δp| {worst:.2e}")
    assert agreement >= MIN_AGREEMENT
    assert worst <= PROB_TOLERANCE
    np.testing.assert_allclose(
        np.array(result["maps"]).reshape(expected_maps.shape), expected_maps, atol=1e-4
    )
    assert result["hidden"] is False  # the script showed the section


@pytest.mark.slow
@needs_browser
def test_page_preprocessing_is_the_python_recipe(tmp_path, tiny_cnn, subset):
    sheets = [as_paper(subset["x_test"][i], size=120, offset=(5 + 3 * i, 10)) for i in range(12)]
    expected = np.stack([digits.prepare(s).image for s in sheets])
    script = (
        f"const bytes = Uint8Array.from(atob('{b64_floats(np.stack(sheets))}'),"
        " c => c.charCodeAt(0));"
        "const all = new Float32Array(bytes.buffer); const out = [];"
        "for (let i = 0; i < 12; i++) {"
        "  const sheet = all.subarray(i * 14400, (i + 1) * 14400);"
        "  out.push(Array.from(DigitPad.prepare(sheet, 120, 120)));"
        "}"
        "let blank; try { DigitPad.prepare(new Float32Array(400).fill(1), 20, 20); }"
        " catch (e) { blank = e instanceof DigitPad.DigitError; }"
        "return {out, blank};"
    )
    result = run_in_browser(pad_page(tmp_path, tiny_cnn), script, tmp_path)
    page = np.array(result["out"]).reshape(expected.shape)
    np.testing.assert_allclose(page, expected, atol=1e-5)
    assert result["blank"] is True


@pytest.mark.slow
@needs_browser
def test_drawing_a_stroke_shows_a_prediction(tmp_path, tiny_cnn):
    # A "1": one vertical stroke drawn with synthetic pointer events, as a mouse would.
    script = (
        "const c = document.getElementById('pad-canvas'); const b = c.getBoundingClientRect();"
        "const before = document.getElementById('pad-digit').textContent;"
        "const ev = (type, y) => c.dispatchEvent(new PointerEvent(type, {bubbles: true,"
        " pointerId: 1, clientX: b.left + 140, clientY: b.top + y, pointerType: 'mouse'}));"
        "ev('pointerdown', 50); for (let y = 60; y <= 230; y += 10) ev('pointermove', y);"
        "ev('pointerup', 230);"
        "const widths = Array.from(document.querySelectorAll('#pad-bars i'),"
        " i => parseFloat(i.style.width));"
        "return {before, digit: document.getElementById('pad-digit').textContent,"
        " predicted: document.getElementById('pad').dataset.predicted, widths,"
        " maps1: Array.from(document.querySelectorAll('#pad-maps1 canvas'), m => m.width),"
        " maps2: Array.from(document.querySelectorAll('#pad-maps2 canvas'), m => m.width),"
        " toc: document.querySelector('nav a[href=\"#pad\"]') !== null};"
    )
    result = run_in_browser(pad_page(tmp_path, tiny_cnn), script, tmp_path)
    assert result["before"] == "–"
    assert result["digit"] in list("0123456789") and result["digit"] == result["predicted"]
    assert len(result["widths"]) == 10 and abs(sum(result["widths"]) - 100) < 1
    assert max(result["widths"]) == result["widths"][int(result["digit"])]
    assert result["maps1"] == [26] * 32 and result["maps2"] == [11] * 32
    assert result["toc"]
