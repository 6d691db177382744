"""The report's convolution playground: pick a kernel, watch it convolve the demo image live.

The page computes everything itself (``intro_cnn/reporting/assets/playground.js``): the kernels
(a Gaussian of any size and sigma, the notebook's Sobel-like filter in x or y, sharpen, box
blur, a 3×3 typed in) and their convolution with the demo image, in colour channel by channel
and in grey, and the 1-D Gaussian over the random walk, with the rule of
:func:`scipy.ndimage.convolve` (``mode="reflect"``). Its inputs are the ``convolutions``
stage's ``playground.json`` (:mod:`intro_cnn.reporting.playground_inputs`); the colours of the
kernel view are matplotlib's ``viridis`` and ``RdBu_r``, as in the static figures.

Without JavaScript the section stays hidden; the static figures above it are the same.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from intro_cnn import i18n
from intro_cnn.reporting import inline

ASSETS = "playground"  # assets/playground.js and assets/playground.css
SECTION_ID = "playground"
DATA_ID = "playground-data"

# The kernels of the menu, in order (their names are the catalogue's ``kernel_<name>``).
KERNELS = ("gaussian", "sobel_x", "sobel_y", "sharpen", "box", "custom")
SIZES = range(1, 22, 2)  # odd sides only: scipy centres a kernel on tap size // 2
SIGMA_RANGE = (0.3, 6.0)
COLORMAP_STOPS = 11
# Labels the playground shares with the static figures (the ``figures`` texts).
FIGURE_LABELS = ("random_walk", "smoothed")


def colormap(name: str, stops: int = COLORMAP_STOPS) -> list[list[int]]:
    """``stops`` evenly spaced colours of a matplotlib colormap, as 0-255 RGB triples (the
    page interpolates between them)."""
    from matplotlib import colormaps

    cmap = colormaps[name]
    return [
        [round(255 * c) for c in cmap(i / (stops - 1))[:3]]  # type: ignore[misc]
        for i in range(stops)
    ]


def page_data(inputs: Mapping[str, Any], lang: str) -> dict[str, Any]:
    """What the script reads: the image and walk, the notebook's Gaussian, texts, colours."""
    texts = dict(i18n.section("playground", lang))
    texts.update({k: i18n.text("figures", k, lang) for k in FIGURE_LABELS})
    return {
        **{k: inputs[k] for k in ("image", "walk", "gaussian")},
        "kernels": list(KERNELS),
        "sizes": list(SIZES),
        "sigmaRange": list(SIGMA_RANGE),
        "colormaps": {"viridis": colormap("viridis"), "RdBu_r": colormap("RdBu_r")},
        "text": texts,
    }


def section(inputs: Mapping[str, Any], lang: str, script: str) -> str:
    """The playground's HTML: hidden until the script shows it (without JS nothing changes)."""
    t = i18n.section("playground", lang)
    esc = html.escape
    width, height = inputs["image"]["width"], inputs["image"]["height"]
    full_width, full_height = inputs["image"]["full_size"]
    options = "".join(f'<option value="{k}">{esc(t[f"kernel_{k}"])}</option>' for k in KERNELS)
    cells = "".join(
        f'<input type="number" step="any" value="{v}" aria-label="{esc(t["cell"])} {i + 1}">'
        for i, v in enumerate((0, -1, 0, -1, 4, -1, 0, -1, 0))
    )
    intro = t["intro"].format(width=width, height=height, full=f"{full_width}×{full_height}")

    def view(key: str, canvas_id: str) -> str:
        return (
            f'<figure class="pg-view"><canvas id="{canvas_id}" width="{width}" '
            f'height="{height}"></canvas><figcaption>{esc(t[key])}</figcaption></figure>'
        )

    return (
        f'<div id="{SECTION_ID}" hidden><h3>{esc(t["title"])}</h3><p>{esc(intro)}</p>'
        f'<p class="note">{esc(t["rule"])}</p>'
        '<div class="pg-controls">'
        f'<label>{esc(t["kernel"])} <select id="pg-kernel">{options}</select></label>'
        f'<label>{esc(t["size"])} <input id="pg-size" type="range" min="{SIZES[0]}" '
        f'max="{SIZES[-1]}" step="2"> <output id="pg-size-out"></output></label>'
        f'<label>σ <input id="pg-sigma" type="range" min="{SIGMA_RANGE[0]}" '
        f'max="{SIGMA_RANGE[1]}" step="any"> <output id="pg-sigma-out"></output></label>'
        f'<fieldset id="pg-custom" hidden><legend>{esc(t["custom"])}</legend>{cells}</fieldset>'
        "</div>"
        '<div class="pg-row"><figure class="pg-kernel">'
        '<canvas id="pg-matrix" width="210" height="210"></canvas>'
        f'<figcaption>{esc(t["matrix"])} <span id="pg-sum"></span></figcaption></figure>'
        f"{view('original', 'pg-original')}{view('colour', 'pg-colour')}{view('grey', 'pg-grey')}"
        "</div>"
        f'<p class="note" id="pg-display"></p>'
        '<figure class="pg-walk"><canvas id="pg-walk" width="700" height="220"></canvas>'
        f"<figcaption>{esc(t['walk'])}</figcaption></figure>"
        f"{inline.data_and_script(DATA_ID, page_data(inputs, lang), script)}</div>"
    )


def read_assets() -> tuple[str, str]:
    """The playground's script and style sheet, inlined by the report."""
    return inline.read_assets(ASSETS)
