"""Offline `dvc plots`: the page template in plots/ (vega inlined) and DVC's config pointing at it.

The slow tests render real `dvc plots show` output in headless Chromium with every host name
unresolvable, and check that the charts are drawn; the same page with DVC's own template (which
loads vega from a CDN) is the control that must come out blank.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from intro_cnn import config
from intro_cnn.training import train_outputs
from tests.conftest import BROWSER, ROOT, run

TEMPLATE = ROOT / "plots" / "offline.html"
LOCK = ROOT / "plots" / "package-lock.json"


def test_dvc_config_points_at_the_offline_template():
    out = run([sys.executable, "-m", "dvc", "config", "plots.html_template"], ROOT)
    # DVC resolves a relative template path against .dvc/.
    assert (ROOT / ".dvc" / out.stdout.strip()).resolve() == TEMPLATE


def test_template_inlines_the_locked_libraries_and_loads_nothing():
    page = TEMPLATE.read_text(encoding="utf-8")
    packages = json.loads(LOCK.read_text(encoding="utf-8"))["packages"]
    for name in ("vega", "vega-lite", "vega-embed"):
        version = packages[f"node_modules/{name}"]["version"]
        assert f"/*! {name} {version} |" in page
    assert page.count("{plot_divs}") == 1
    assert "{scripts}" not in page  # DVC's CDN <script> tags have nowhere to go
    assert not re.search(r"<script[^>]*\ssrc=", page)
    assert "<link" not in page
    licences = (ROOT / "plots" / "THIRD_PARTY_LICENSES.txt").read_text(encoding="utf-8")
    assert "vega-embed 6.29.0 (BSD-3-Clause)" in licences
    assert "Copyright (c) 2015-2023, University of Washington Interactive Data Lab" in licences


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("npm") is None, reason="npm not installed")
def test_template_rebuilds_byte_identically_from_the_lock(tmp_path):
    """`npm ci` from the lock, then the build script: the committed files come out again."""
    work = tmp_path / "plots"
    shutil.copytree(ROOT / "plots", work, ignore=shutil.ignore_patterns("node_modules"))
    run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], work)
    script = tmp_path / "scripts" / "build_plots_template.py"
    script.parent.mkdir()
    shutil.copy2(ROOT / "scripts" / "build_plots_template.py", script)
    run([sys.executable, str(script), "--check"], tmp_path)  # compares with the copied files


# ---------------------------------------------------------------------------- slow: Chromium
def _history(epochs: int, offset: float) -> list[dict[str, float]]:
    return [
        {
            "epoch": e,
            "accuracy": 0.9 + offset + 0.004 * e,
            "loss": 0.4 / e,
            "val_accuracy": 0.88 + offset + 0.005 * e,
            "val_loss": 0.45 / e,
            "seconds": 1.0,
        }
        for e in range(1, epochs + 1)
    ]


def _render(page: Path, shot: Path, profile: Path) -> str:
    """The DOM after scripts ran, and a screenshot, with no host name resolvable (offline)."""
    common = [
        BROWSER,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=20000",
        "--window-size=1200,900",
    ]
    url = page.resolve().as_uri()
    dom = subprocess.run(
        [*common, "--dump-dom", url], capture_output=True, text=True, timeout=180, check=True
    ).stdout
    subprocess.run([*common, f"--screenshot={shot}", url], capture_output=True, timeout=180)
    return dom


def _ink(shot: Path) -> float:
    """Fraction of the screenshot's pixels that are not white."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"))
    return float((pixels < 250).mean())


def _check_axes_and_legends(shown: dict) -> None:
    """Every curve counts epochs from 1 (not DVC's rows from 0), and the overlays' legend says
    which dash is which field."""
    plots = {name: entry[0]["content"] for name, entry in shown["data"].items() if entry}
    histories = [n for n in plots if n.startswith("reports/train/")]
    assert histories
    for name in [*histories, "reports/figures/dvc_loss", "reports/figures/dvc_val_accuracy"]:
        values = plots[name]["data"]["values"]
        assert min(int(v["epoch"]) for v in values) == 1, name
        assert "epoch" in json.dumps(plots[name]["encoding"]["x"]), name
    loss = plots["reports/figures/dvc_loss"]
    legend = loss["encoding"]["strokeDash"]["legend"]
    assert legend["symbolType"] == "stroke" and legend["encode"]["symbols"]["update"]["stroke"]
    assert {v["field"] for v in loss["data"]["values"]} == {"loss", "val_loss"}
    assert "dashed validation" in loss["encoding"]["y"]["title"]


@pytest.mark.slow
@pytest.mark.skipif(BROWSER is None, reason="chromium not installed (.ci/run installs it)")
def test_dvc_plots_show_draws_offline(repo, tmp_path):
    # The project's DVC config and template, as a clone has them.
    shutil.copy2(ROOT / ".dvc" / "config", repo / ".dvc" / "config")
    (repo / "plots").mkdir(exist_ok=True)  # the repo has plots/by_model.json already
    shutil.copy2(TEMPLATE, repo / "plots" / "offline.html")
    models = list(config.load_params(repo / "params.yaml").models)
    gathered = []
    for i, name in enumerate(models):
        target = repo / config.history_path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        rows = _history(3 + i, 0.01 * i)
        target.write_text(train_outputs.history_csv(rows))
        gathered += [{"model": name, **row} for row in rows]
    # What the compare stage gathers for the top-level plots.
    table = repo / config.COMPARE_HISTORY
    table.parent.mkdir(parents=True)
    columns = list(gathered[0])
    lines = [",".join(columns)] + [",".join(str(r[c]) for c in columns) for r in gathered]
    table.write_text("\n".join(lines) + "\n")

    run(["dvc", "plots", "show", "-o", "offline"], repo)
    _check_axes_and_legends(json.loads(run(["dvc", "plots", "show", "--json"], repo).stdout))
    default = tmp_path / "dvc_default.html"
    from dvc_render.html import PAGE_HTML  # DVC's own page, vega from a CDN

    default.write_text(PAGE_HTML)
    run(["dvc", "plots", "show", "-o", "cdn", "--html-template", str(default)], repo)

    charts = {}
    for variant in ("offline", "cdn"):
        shot = tmp_path / f"{variant}.png"
        dom = _render(repo / variant / "index.html", shot, tmp_path / f"profile-{variant}")
        divs = re.findall(r'<div id="(reports_[a-z_]+)"', dom)
        assert {"reports_figures_dvc_loss", "reports_figures_dvc_val_accuracy"} <= set(divs)
        charts[variant] = (len(divs), dom.count('class="marks"'), _ink(shot))

    n_divs, drawn, ink = charts["offline"]
    assert drawn == n_divs, f"vega drew {drawn} of {n_divs} charts"
    assert ink > 0.02, f"the offline page is nearly blank ({ink:.3%} non-white pixels)"
    # The control: DVC's default page, offline, draws nothing.
    assert charts["cdn"][1] == 0 and charts["cdn"][2] < 0.001
