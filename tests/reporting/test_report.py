"""Tests of the report stage: a self-contained page with every figure, verdict and source, in
both languages; the stage end to end after the real upstream stages; the screenshot script."""

from __future__ import annotations

import base64
import dataclasses
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import markupsafe
import numpy as np
import pytest
from PIL import Image

from intro_cnn import config, tracking
from intro_cnn.config import ROOT
from intro_cnn.evaluation import claims
from intro_cnn.reporting import report as rp
from intro_cnn.reporting import report_inputs as ri
from intro_cnn.reporting.errors import ReportError
from intro_cnn.runtime.errors import StageError
from intro_cnn.runtime.files import read_json, write_bytes, write_json, write_text
from stages import report, visualize
from tests.conftest import build_project, needs_browser, run_in_browser

COMMIT = "0123456789abcdef0123456789abcdef01234567"
EVIL = "<script>alert('x')</script> & co"
SCRIPT = ROOT / "scripts" / "check_report.sh"
# As long as the notebook's real image address: a URL has no place to break a line.
FALLBACK_URL = (
    "https://upload.wikimedia.org/wikipedia/commons/thumb/f/f1/"
    "El_caballero_de_la_mano_en_el_pecho.jpg/600px-El_caballero_de_la_mano_en_el_pecho.jpg"
)


def png(color: tuple[int, int, int], size: tuple[int, int] = (6, 4)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def external_references(page: str) -> list[str]:
    """Everything in the page that would load (or link to) something outside it."""
    patterns = [
        r"""src\s*=\s*["']?\s*(?:https?:)?//""",
        r"<link\b",
        r"<script\b[^>]*\bsrc\b",  # inline scripts (the drawing pad's) load nothing
        r"""url\(\s*["']?\s*(?:https?:)?//""",
        r"@import",
        r"""href\s*=\s*(?!["']?#)""",
    ]
    return [m.group(0) for p in patterns for m in re.finditer(p, page, flags=re.I)]


def esc(value: str) -> str:
    return str(markupsafe.escape(value))


CLAIMS = [
    {
        "id": "cnn_vs_mlp",
        "statement": "The CNN (cnn) reaches better test accuracy than the dense network (mlp).",
        "verdict": "partly holds",
        "reason": "(English, for readers of the JSON: the report renders its own)",
        "parts": {"better test accuracy": True, "far fewer parameters": False},
        "evidence": {"cnn_params": 700000, "mlp_params": 669706, "params_ratio": 700000 / 669706},
        "intervals": {
            "better test accuracy": {
                "rule": "one against sample",
                "seeds": [1, 2, 3],
                "mean": 0.011,
                "low": 0.008,
                "high": 0.014,
                "a": 0.991,
                "b": 0.98,
            }
        },
    },
    {
        "id": "batchnorm",
        "statement": "Batch normalization improves the small CNN.",
        "verdict": "not checked",
        "reason": "",
        "parts": {},
        "evidence": {},
        "missing": ["cnn_small_bn", EVIL],
    },
]
NETWORK = [
    ("history_cnn.png", "history", ["cnn"]),
    ("history_mlp.png", "history", ["mlp"]),
    ("bn_comparison.png", "bn_comparison", ["cnn_small", "cnn_small_bn"]),
    ("confusion_mlp.png", "confusion", ["mlp"]),
]


def write_fake_inputs(root: Path) -> None:
    """Small but consistent upstream outputs: 8 + 4 figures, table, claims, sources, runs."""
    for k, stem in enumerate(ri.CONV_FIGURES):
        write_bytes(root / config.CONV_DIR / f"{stem}.png", png((30 * k, 0, 0)))
    net = root / config.NETWORK_DIR
    for k, (file, _, _) in enumerate(NETWORK):
        write_bytes(net / file, png((0, 60 * k, 0)))
    figures = [{"file": f, "kind": kind, "models": m} for f, kind, m in NETWORK]
    write_json(net / config.FIGURES_INDEX, {"lang": "es", "figures": figures})
    write_text(
        root / config.COMPARISON_CSV,
        "model,params,epochs,train_seconds,train_samples_per_s,val_accuracy,test_accuracy,"
        "test_loss,inference_images_per_s\n"
        "cnn,700000,20,812.345,26585.2,0.99183,0.991,0.0301,15000.4\n"
        "mlp,669706,10,100.0,54000.0,0.9801,0.98,0.07,40000.0\n",
    )
    write_json(root / config.COMPARE_CLAIMS, CLAIMS)
    write_json(
        root / config.RAW_SOURCES,
        {
            "mnist": {
                "source": "local",
                "location": "/data/mnist.npz",
                "set_by": "MNIST_LOCAL",
                "file_sha256": "06af" * 16,
                "content_sha256": {"x_train": "741c"},
                "failed": [{"source": "keras", "location": "https://x/mnist.npz", "reason": EVIL}],
                "skipped": [],
            },
            "image": {
                "source": "matplotlib",
                "url": "matplotlib.cbook.get_sample_data('grace_hopper.jpg')",
                "file": "image.jpg",
                "size": [512, 600],
                "sha256": "a8ca" * 16,
                "fallback": True,
                "failed": [
                    {
                        "source": "data.image_url",
                        "url": FALLBACK_URL,
                        "reason": "ConnectionError: name resolution failed",
                    }
                ],
            },
        },
    )
    write_json(
        root / config.COMPARE_RUNS,
        {
            "cnn": {"run_id": "a" * 32, "experiment": "intro-cnn", "restored": False},
            "mlp": {"run_id": "b" * 32, "experiment": "intro-cnn", "restored": True},
        },
    )
    write_text(root / "params.yaml", "report:\n  lang: es  # <b>not bold</b>\n")


def fake_inputs(root: Path) -> ri.ReportInputs:
    write_fake_inputs(root)
    layers = [
        ri.LayerRow("image", "InputLayer", "28 × 28 × 1", 0),
        ri.LayerRow("conv1", "Conv2D", "26 × 26 × 32", 320),
    ]
    return ri.ReportInputs(
        conv_figures=ri.read_conv_figures(root / config.CONV_DIR),
        network_figures=ri.read_network_figures(root / config.NETWORK_DIR),
        summaries={"cnn": layers, "mlp": layers[:1]},
        comparison=ri.read_comparison(root / config.COMPARISON_CSV),
        claims=read_json(root / config.COMPARE_CLAIMS),
        sources=read_json(root / config.RAW_SOURCES),
        runs=read_json(root / config.COMPARE_RUNS),
        params_text=(root / "params.yaml").read_text(),
        provenance={"git_commit": COMMIT, "git_dirty": "true", "python": "3.11.9"},
    )


def embedded_images(page: str) -> list[bytes]:
    return [
        base64.b64decode(b64)
        for b64 in re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    ]


# --------------------------------------------------------------------------------------
# Texts
# --------------------------------------------------------------------------------------
def test_every_caption_has_a_text():
    for stem in ri.CONV_FIGURES:
        assert rp.has_text(f"cap_{stem}", "es"), stem
    for _, kinds in rp.NETWORK_SECTIONS:
        for kind in kinds:
            assert rp.has_text(f"cap_{kind}", "es"), kind


def test_layer_tables_come_from_the_evaluations(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = [
        {"name": "image", "type": "InputLayer", "output_shape": "28 × 28 × 1", "params": 0},
        {"name": "output", "type": "Dense", "output_shape": "10", "params": 650},
    ]
    write_json(config.eval_dir("cnn") / config.EVAL_LAYERS, rows)
    assert ri.model_summaries(["cnn"]) == {"cnn": [ri.LayerRow(**r) for r in rows]}
    with pytest.raises(StageError, match=r"dvc repro evaluate@mlp"):
        ri.model_summaries(["cnn", "mlp"])
    write_json(config.eval_dir("mlp") / config.EVAL_LAYERS, [{"name": "x"}])
    with pytest.raises(ReportError, match=r"not a layer table.*rerun evaluate@mlp"):
        ri.model_summaries(["mlp"])


# --------------------------------------------------------------------------------------
# The page from fake inputs
# --------------------------------------------------------------------------------------
VERDICTS = {
    "es": ("se cumple en parte", "no comprobada"),
    "en": ("partly holds", "not checked"),
}


@pytest.mark.parametrize("lang", ["es", "en"])
def test_page_is_complete_and_self_contained(tmp_path, lang):
    inputs = fake_inputs(tmp_path)
    page = rp.build_html(inputs, lang)

    assert page.startswith("<!DOCTYPE html>") and f'<html lang="{lang}">' in page
    # Every figure, embedded, in order: the 8 convolution figures, then the network ones.
    expected = [b for _, b in inputs.conv_figures] + [f.png for f in inputs.network_figures]
    assert page.count('<img src="data:image/png;base64,') == 12
    assert embedded_images(page) == expected
    for stem in ri.CONV_FIGURES:
        assert esc(rp.text(f"cap_{stem}", lang)) in page
    assert esc(rp.text("cap_history", lang, model="cnn")) in page
    assert esc(rp.text("cap_bn_comparison", lang, plain="cnn_small", bn="cnn_small_bn")) in page
    assert f"{rp.text('figure', lang)} 12." in page
    # A second figure of a kind refers back to the first one's explanation.
    assert esc(rp.text("cap_again", lang, n=9, model="mlp")) in page

    # Nothing loaded from elsewhere; no script at all; links only within the page.
    assert external_references(page) == []

    # The fallback image is flagged in a visible warning box.
    (warning,) = re.findall(r'<div class="warning"[^>]*>(.*?)</div>', page, flags=re.S)
    assert FALLBACK_URL in warning
    assert "grace_hopper.jpg" in warning
    # What failed is said in the page's language; the raw English reason is a marked detail.
    assert esc(rp.text("reason_connection", lang)) in warning
    assert (
        f'{esc(rp.text("reason_connection", lang))}. <span class="note">'
        f"{esc(rp.text('technical_detail', lang))}:</span> "
        '<code class="detail">ConnectionError: name resolution failed</code>'
    ) in page

    # Both claims with their verdict in the page's language.
    for verdict in VERDICTS[lang]:
        assert f'<span class="verdict">{verdict}</span>' in page
    assert page.count('<div class="claim ') == 2
    assert '<div class="claim partly">' in page and '<div class="claim unchecked">' in page

    # Provenance: commit, dirty flag, runs, params.
    assert COMMIT in page
    assert "a" * 32 in page and "b" * 32 in page
    assert "lang: es  # &lt;b&gt;not bold&lt;/b&gt;" in page

    # The style sheet is inlined as written; whatever comes from files is escaped.
    assert 'font-family: "DejaVu Sans"' in page
    assert "<script>" not in page and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page

    # The comparison table, formatted.
    assert ">700\u202f000<" in page and ">0.9910<" in page and ">812.3<" in page
    assert f">{rp.text('col_test_accuracy', lang)}<" in page
    assert esc(rp.text("total_params", lang, model="cnn", n="320")) in page


def test_claims_are_rendered_in_the_page_language(tmp_path):
    page = rp.build_html(fake_inputs(tmp_path), "es")
    assert (
        "Mejor precisión en prueba: cnn 0.9910 frente a mlp 0.9800 (una ejecución frente a la "
        "media de las semillas 1, 2, 3, suponiendo la misma dispersión entre semillas); "
        "diferencia +1.10 puntos, intervalo del 95 % [+0.80, +1.40]: sí." in page
    )
    assert "104.5 % de los de mlp; menos de la mitad: no" in page
    assert "mejor precisión en prueba: <b>sí</b>" in page
    assert "muchos menos parámetros (menos de la mitad): <b>no</b>" in page
    assert esc(claims.statement("cnn_vs_mlp", "es")) in page
    assert "Falta(n) en `models` de params.yaml: cnn_small_bn, &lt;script&gt;" in page
    page_en = rp.build_html(fake_inputs(tmp_path), "en")
    assert "difference +1.10 points, 95 % interval [+0.80, +1.40]: yes." in page_en
    assert esc(claims.statement("cnn_vs_mlp", "en")) in page_en
    assert CLAIMS[0]["reason"] not in page_en  # the JSON's prose is never parsed nor shown


def test_a_claim_the_report_cannot_read_names_the_fix(tmp_path):
    broken = {**CLAIMS[0], "evidence": {}}
    with pytest.raises(ReportError, match="rerun `dvc repro compare`"):
        rp.claim_view(broken, "es")
    no_rule = {**CLAIMS[0], "intervals": {"better test accuracy": {"mean": 0.01}}}
    with pytest.raises(ReportError, match="rerun `dvc repro compare`"):
        rp.claim_view(no_rule, "es")


def test_claim_parts_follow_the_statement():
    claim = {
        "id": "batchnorm",
        "verdict": "partly holds",
        # As claims.json stores them: sorted keys.
        "parts": {
            "faster early rise": None,
            "higher test accuracy": False,
            "higher validation accuracy": True,
        },
        "evidence": {},
    }
    assert rp.claim_view(claim, "en")["parts"] == [
        ("higher validation accuracy", "yes"),
        ("higher test accuracy", "no"),
        ("faster rise in the first epochs", "not checked"),
    ]
    noise = {**claim, "parts": {**claim["parts"], "higher test accuracy": "noise"}}
    assert rp.claim_view(noise, "es")["parts"][1] == (
        "mayor precisión en prueba",
        "no se distingue del ruido de semilla",
    )


# Scroll width of the page in an iframe of each width; elements scrolling in their own box
# (the wide tables) are fine, the page itself must not scroll sideways.
PAGE_WIDTH_SCRIPT = """
const sizes = [420, 1280];
return Promise.all(sizes.map((w) => new Promise((ok) => {
  const f = document.createElement('iframe');
  f.width = w; f.height = 900; f.src = 'report.html';
  f.onload = () => { const d = f.contentDocument.documentElement;
    ok({width: w, client: d.clientWidth, scroll: d.scrollWidth}); };
  document.body.appendChild(f);
})));
"""


@needs_browser
@pytest.mark.parametrize("lang", ["es", "en"])
def test_page_does_not_scroll_sideways_on_a_phone(tmp_path, lang):
    """At 420 px (a phone) and 1280 px the page is no wider than the window, with the fallback
    warning's long URL and the English technical reasons in it."""
    write_text(tmp_path / "report.html", rp.build_html(fake_inputs(tmp_path / "in"), lang))
    frames = run_in_browser("<html><body></body></html>", PAGE_WIDTH_SCRIPT, tmp_path)
    assert [f["width"] for f in frames] == [420, 1280]
    for f in frames:
        assert f["scroll"] <= f["client"], f


def test_no_warning_without_fallback(tmp_path):
    inputs = fake_inputs(tmp_path)
    sources = {**inputs.sources, "image": {**inputs.sources["image"], "fallback": False}}
    page = rp.build_html(dataclasses.replace(inputs, sources=sources), "es")
    assert 'class="warning"' not in page


def test_missing_inputs_fail_with_the_fix(tmp_path, monkeypatch, caplog):
    write_text(tmp_path / "params.yaml", (ROOT / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        report.main()
    assert exc.value.code == 1
    assert "01_random_walk.png" in caplog.text and "dvc repro convolutions" in caplog.text
    assert not config.REPORT_HTML.exists()

    write_fake_inputs(tmp_path)
    write_text(tmp_path / "params.yaml", (ROOT / "params.yaml").read_text())
    (tmp_path / config.NETWORK_DIR / "confusion_mlp.png").unlink()
    with pytest.raises(SystemExit):
        report.main()
    assert "confusion_mlp.png is listed in index.json but missing" in caplog.text
    assert not config.REPORT_HTML.exists()


# --------------------------------------------------------------------------------------
# The stages end to end: train (tiny) -> evaluate -> convolutions -> visualize -> report
# --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_report_end_to_end(tmp_path, monkeypatch, subset):
    from stages import convolutions

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    build_project(tmp_path, subset, lang="es")
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))
    config.RAW_IMAGE_DIR.mkdir(parents=True)
    image.save(config.RAW_IMAGE_DIR / "image.png")
    write_json(
        config.RAW_SOURCES,
        {
            "mnist": {
                "source": "local",
                "location": "tests/fixtures/mnist_subset.npz",
                "failed": [],
            },
            "image": {"source": "data.image_local", "url": "image.png", "fallback": False},
        },
    )
    convolutions.main()
    visualize.main()

    report.main()

    page = config.REPORT_HTML.read_text(encoding="utf-8")
    index = read_json(config.NETWORK_DIR / config.FIGURES_INDEX)
    assert page.count('<img src="data:image/png;base64,') == 8 + len(index["figures"]) == 26
    net = [(config.NETWORK_DIR / f["file"]).read_bytes() for f in index["figures"]]
    assert set(embedded_images(page)[8:]) == set(net)
    assert external_references(page) == []
    assert 'class="warning"' not in page
    for name in ("cnn", "cnn_small", "cnn_small_bn", "mlp"):
        assert f"{name}: " in page and " parámetros</caption>" in page
    assert esc(rp.text("total_params", "es", model="cnn_small", n="14\u202f178")) in page
    for run in read_json(config.COMPARE_RUNS).values():
        assert run["run_id"] in page
    assert tracking.provenance_tags()["git_commit"] in page
    assert page.count('<div class="claim ') == 2
    assert "conv1" in page and "Conv2D" in page and "26 × 26 × 32" in page
    # The drawing pad (from models/cnn.keras) and the convolution playground (from the
    # convolutions stage's playground.json), hidden until their scripts run: data and code each.
    assert '<section id="pad" hidden>' in page and '<div id="playground" hidden>' in page
    assert page.count("<script") == 4

    # Rerun: the same page (nothing time-dependent in it).
    report.main()
    assert config.REPORT_HTML.read_text(encoding="utf-8") == page


# --------------------------------------------------------------------------------------
# scripts/check_report.sh
# --------------------------------------------------------------------------------------
def test_check_script_skips_without_chromium(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    out = subprocess.run(
        ["/bin/bash", str(SCRIPT)],
        cwd=tmp_path,
        env={"PATH": str(empty), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "chromium not found, skipping"


@pytest.mark.slow
@pytest.mark.skipif(
    not (shutil.which("chromium") or shutil.which("chromium-browser")),
    reason="chromium not installed",
)
def test_check_script_renders_a_screenshot(tmp_path):
    page = rp.build_html(fake_inputs(tmp_path), "es")
    write_text(tmp_path / config.REPORT_HTML, page)
    out = subprocess.run(
        ["bash", str(SCRIPT)],
        cwd=tmp_path,
        env={**os.environ, "CHECK_REPORT_HEIGHT": "900"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    with Image.open(tmp_path / "reports" / "screenshot.png") as im:
        assert im.format == "PNG" and im.size == (1280, 900)
        # Something was drawn: the page is not a blank white sheet.
        assert len(im.convert("L").getcolors(maxcolors=1 << 16) or range(2)) > 1


def test_the_comparison_table_shows_each_model_across_its_seeds():
    rows = [{"model": "cnn", "test_accuracy": "0.9898"}, {"model": "mlp", "test_accuracy": "0.98"}]
    spread = {
        "cnn": {
            "n": 1,
            "test_accuracy": {"mean": 0.9898, "std": 0.0, "low": 0.9898, "high": 0.9898},
        },
        "mlp": {
            "n": 5,
            "test_accuracy": {"mean": 0.98212, "std": 0.00143, "low": 0.98034, "high": 0.9839},
        },
    }
    view = rp.comparison_view(rows, "en", spread)
    shown = {title: [c["text"] for c in cells] for title, cells in view["rows"]}
    assert shown["seeds trained (n)"] == ["1", "5"]
    assert shown["test accuracy across seeds, mean ± sd"] == ["0.9898 ± 0.0000", "0.9821 ± 0.0014"]
    assert shown["95 % interval of that mean"] == ["—", "[0.9803, 0.9839]"]
    assert len(rp.comparison_view(rows, "en")["rows"]) == 1  # no seeds entry: no seed rows
