"""Tests of the report's convolution playground: the section as the report renders it, and (slow)
the page's own script in headless Chromium against :func:`scipy.ndimage.convolve`."""

from __future__ import annotations

import dataclasses
import html
import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from intro_cnn import config, i18n
from intro_cnn.demos import convolutions
from intro_cnn.reporting import playground as page_playground
from intro_cnn.reporting import playground_inputs as playground
from intro_cnn.reporting import report as rp
from intro_cnn.runtime.files import write_text
from tests.conftest import needs_browser, run_in_browser
from tests.reporting.test_report import PAGE_WIDTH_SCRIPT, external_references, fake_inputs

CFG = config.ConvolutionsConfig(walk_seed=2, walk_steps=200, gauss_taps=15, gauss_halfwidth=2.0)
# The page sums in float64 in another order than scipy: only the last bits may differ.
TOLERANCE = 1e-9
# A 3×3 typed in, asymmetric in both directions: a correlation (no flip) would not match.
CUSTOM = [1.0, 2.0, 3.0, 0.0, 0.5, 0.0, -1.0, -4.0, 2.0]


def demo_image(height: int = 36, width: int = 48) -> np.ndarray:
    """Gradients, a bright square and noise: edges in both directions and every channel apart."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([255 * x / width, 255 * y / height, 128 + 0 * x], axis=-1)
    image[10:22, 15:30] = 240
    image += rng.normal(0, 12, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def playground_inputs(image: np.ndarray | None = None) -> dict:
    image = demo_image() if image is None else image
    data = playground.playground_data(convolutions.compute_all(CFG, image), CFG)
    return json.loads(json.dumps(data))  # as the report reads it back from the file


def playground_page(tmp_path: Path, lang: str = "es") -> str:
    """The report page (fake figures and tables) with the real playground."""
    inputs = dataclasses.replace(
        fake_inputs(tmp_path),
        playground=playground_inputs(),
        playground_assets=page_playground.read_assets(),
    )
    return rp.build_html(inputs, lang)


# --------------------------------------------------------------------------------------
# Quick
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("lang", ["es", "en"])
def test_the_playground_is_hidden_without_javascript_and_self_contained(tmp_path, lang):
    page = playground_page(tmp_path, lang)
    # Hidden until its script runs; the static convolution figures come before it, in place.
    section = page.index(f'<div id="{page_playground.SECTION_ID}" hidden>')
    assert page.index('<section id="conv"') < section < page.index('<section id="networks"')
    assert page.count('<img src="data:image/png;base64,') == 12
    assert external_references(page) == []
    texts = i18n.section("playground", lang)
    for key in ("title", "rule", "matrix", "colour", "grey", "walk"):
        assert html.escape(texts[key]) in page, key
    options = re.findall(r'<option value="([a-z_]+)">', page)
    assert options == list(page_playground.KERNELS)
    for name in page_playground.KERNELS:
        assert html.escape(texts[f"kernel_{name}"]) in page
    assert "reflect" in texts["rule"] and "scipy.ndimage.convolve" in texts["rule"]


def test_the_embedded_data_is_the_stages_file(tmp_path):
    page = playground_page(tmp_path, "en")
    raw = re.search(
        rf'<script type="application/json" id="{page_playground.DATA_ID}">(.*?)</script>',
        page,
        flags=re.S,
    ).group(1)
    data = json.loads(raw)
    expected = playground_inputs()
    assert {k: data[k] for k in ("image", "walk", "gaussian")} == expected
    assert data["text"]["title"] == i18n.text("playground", "title", "en")
    assert data["text"]["random_walk"] == i18n.text("figures", "random_walk", "en")
    assert len(data["colormaps"]["viridis"]) == page_playground.COLORMAP_STOPS


def test_colormaps_are_matplotlibs():
    viridis = page_playground.colormap("viridis")
    assert viridis[0] == [68, 1, 84] and viridis[-1] == [253, 231, 37]
    red_blue = page_playground.colormap("RdBu_r")
    assert red_blue[0][2] > red_blue[0][0] and red_blue[-1][0] > red_blue[-1][2]


def test_no_playground_without_its_file(tmp_path):
    page = rp.build_html(fake_inputs(tmp_path), "es")
    assert page_playground.SECTION_ID not in page and "<script" not in page


# --------------------------------------------------------------------------------------
# Slow: the page's own script in headless Chromium
# --------------------------------------------------------------------------------------
SPECS = [
    {"name": "gaussian", "size": 15, "sigma": playground.notebook_sigma(15, 2.0)},
    {"name": "gaussian", "size": 5, "sigma": 0.8},
    {"name": "sobel_x", "size": 15, "sigma": playground.notebook_sigma(15, 2.0)},
    {"name": "sobel_y", "size": 7, "sigma": 1.5},
    {"name": "sharpen", "size": 3, "sigma": 1.0},
    {"name": "box", "size": 9, "sigma": 1.0},
    {"name": "custom", "size": 3, "sigma": 1.0, "cells": CUSTOM},
]

APPLY_SCRIPT = """
const P = window.ConvPlayground;
const specs = %s;
return specs.map((s) => { const out = P.apply(s); return {
  kernel: Array.from(out.kernel.values), size: out.kernel.size,
  grey: Array.from(out.grey), colour: out.colour.map((c) => Array.from(c)),
  smoothed: Array.from(out.smoothed) }; });
"""


@pytest.mark.slow
@needs_browser
def test_the_page_convolves_as_scipy(tmp_path):
    """Every kernel of the menu, in colour channel by channel and in grey, against
    :func:`scipy.ndimage.convolve` on the same image; the kernels against the notebook's."""
    results = run_in_browser(playground_page(tmp_path), APPLY_SCRIPT % json.dumps(SPECS), tmp_path)
    image = playground.image_array(playground_inputs()).astype(np.float64)
    grey = convolutions.to_grey(image)
    height, width = grey.shape
    for spec, out in zip(SPECS, results, strict=True):
        n = out["size"]
        kernel = np.array(out["kernel"]).reshape(n, n)
        assert np.isclose(kernel.sum(), 1.0) or spec["name"] in ("sobel_x", "sobel_y", "custom")
        page_grey = np.array(out["grey"]).reshape(height, width)
        np.testing.assert_allclose(page_grey, ndimage.convolve(grey, kernel), atol=TOLERANCE)
        for c in range(3):
            page_channel = np.array(out["colour"][c]).reshape(height, width)
            expected = ndimage.convolve(image[:, :, c], kernel, mode="reflect")
            np.testing.assert_allclose(page_channel, expected, atol=TOLERANCE, err_msg=str(spec))

    # The default Gaussian and the Sobel-like filter are the notebook's (the static figures').
    g = convolutions.gaussian_1d(15, 2.0)
    g2d = convolutions.gaussian_2d(g)
    np.testing.assert_allclose(np.reshape(results[0]["kernel"], (15, 15)), g2d, atol=1e-15)
    gradient = convolutions.gradient_filter(g2d)
    np.testing.assert_allclose(np.reshape(results[2]["kernel"], (15, 15)), gradient, atol=1e-15)
    sobel_y = np.reshape(results[3]["kernel"], (7, 7))
    g7 = np.exp(-((np.arange(7) - 3) ** 2) / (2 * 1.5**2))
    g7 /= g7.sum()
    expected_y = convolutions.gradient_filter(convolutions.gaussian_2d(g7)).T
    np.testing.assert_allclose(sobel_y, expected_y, atol=1e-15)
    assert results[6]["kernel"] == CUSTOM
    walk = np.array(playground_inputs()["walk"])
    np.testing.assert_allclose(results[0]["smoothed"], convolutions.smooth(walk, g), atol=TOLERANCE)


INTERACT_SCRIPT = """
const $ = (id) => document.getElementById(id);
const section = $('playground');
// What an input event schedules for the next frame, done at once (headless frames are not
// reliably delivered under a virtual time budget).
const repaint = () => window.ConvPlayground.update();
const seen = {visible: !section.hidden};
const menu = $('pg-kernel');
menu.value = 'custom';
repaint();
const cells = Array.from($('pg-custom').querySelectorAll('input'));
%s.forEach((v, i) => { cells[i].value = String(v); });
repaint();
const pen = $('pg-grey').getContext('2d');
const px = pen.getImageData(0, 0, $('pg-grey').width, $('pg-grey').height).data;
seen.custom = {kernel: section.dataset.kernel, fieldset: !$('pg-custom').hidden,
  sizeDisabled: $('pg-size').disabled, display: $('pg-display').textContent,
  red: Array.from(px.filter((_, i) => i %% 4 === 0))};
menu.value = 'sobel_x';
repaint();
seen.sobel = {kernel: section.dataset.kernel, fieldset: !$('pg-custom').hidden,
  display: $('pg-display').textContent, sizeText: $('pg-size-out').textContent};
return seen;
"""


@pytest.mark.slow
@needs_browser
@pytest.mark.parametrize("lang", ["es", "en"])
def test_choosing_a_kernel_repaints_the_page(tmp_path, lang):
    """What a student does: pick the 3×3 by hand, type weights, then the Sobel-like filter; the
    grey canvas shows the clipped convolution, the notes follow the kernel."""
    script = INTERACT_SCRIPT % json.dumps(CUSTOM)
    seen = run_in_browser(playground_page(tmp_path, lang), script, tmp_path)
    texts = i18n.section("playground", lang)
    assert seen["visible"]
    custom = seen["custom"]
    assert custom["kernel"] == "custom" and custom["fieldset"] and custom["sizeDisabled"]
    assert custom["display"] == texts["display_clipped"]
    image = playground.image_array(playground_inputs()).astype(np.float64)
    expected = np.clip(
        ndimage.convolve(convolutions.to_grey(image), np.reshape(CUSTOM, (3, 3))), 0, 255
    )
    # Canvas pixels are bytes: rounded, so within one level.
    assert np.abs(np.array(custom["red"]) - expected.ravel()).max() <= 1
    sobel = seen["sobel"]
    assert sobel["kernel"] == "sobel_x" and not sobel["fieldset"]
    assert sobel["display"] == texts["display_signed"] and sobel["sizeText"] == "15×15"


@needs_browser
def test_the_page_with_the_playground_fits_a_phone(tmp_path):
    write_text(tmp_path / "report.html", playground_page(tmp_path / "in"))
    frames = run_in_browser("<html><body></body></html>", PAGE_WIDTH_SCRIPT, tmp_path)
    assert [f["width"] for f in frames] == [420, 1280]
    for f in frames:
        assert f["scroll"] <= f["client"], f
