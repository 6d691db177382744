"""The figures only the notebook draws: a row of MNIST digits, the digit recipe on a made-up
photo, and a short retraining's curves beside the pipeline's. Labels come from the catalogue's
``figures`` and ``notebook`` texts; the style and rendering are the library's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from intro_cnn import i18n
from intro_cnn.reporting import curve_figures, plotting
from intro_cnn.reporting.plotting import label

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _t(key: str, lang: str, **fields: object) -> str:
    return i18n.text("notebook", key, lang, **fields)


def fig_digits(images: np.ndarray, labels: Sequence[int], lang: str) -> Figure:
    """``images`` (N, 28, 28[, 1]) in a row, each titled with its label, ink white on black
    as the network sees it."""
    n = len(images)
    with plotting.plot_style():
        fig = plotting.new_figure((1.3 * n + 0.4, 2.0))
        for k in range(n):
            ax = fig.add_subplot(1, n, k + 1)
            ax.imshow(np.asarray(images[k]).squeeze(), cmap="gray", vmin=0, vmax=1)
            ax.set_title(label("digit", lang, label=int(labels[k])))
            plotting.bare_axes(ax)
        fig.suptitle(_t("digits_title", lang))
    return fig


def fig_recipe(photo: np.ndarray, prepared: np.ndarray, original: np.ndarray, lang: str) -> Figure:
    """The digit recipe in three panels: the greyscale "photo", what the recipe made of it
    (28×28, ink 1 on 0) and the MNIST digit the photo was made from."""
    panels = (
        (photo, _t("recipe_photo", lang, height=photo.shape[0], width=photo.shape[1])),
        (prepared, _t("recipe_prepared", lang)),
        (np.asarray(original).squeeze(), _t("recipe_original", lang)),
    )
    with plotting.plot_style():
        fig = plotting.new_figure(plotting.FIGSIZE_WIDE)
        for k, (image, title) in enumerate(panels):
            ax = fig.add_subplot(1, 3, k + 1)
            ax.imshow(image, cmap="gray", vmin=0, vmax=1)
            ax.set_title(title, fontsize=10)
            plotting.bare_axes(ax)
        fig.suptitle(_t("recipe_title", lang))
    return fig


def fig_retrained(
    pipeline: Mapping[str, np.ndarray], notebook: Mapping[str, np.ndarray], model: str, lang: str
) -> Figure:
    """Training (dashed) and validation (solid) accuracy per epoch of the pipeline's training
    and of the notebook's shorter one, on one axis: the same network, recipe and seed."""
    runs = (
        (pipeline, _t("retrained_pipeline", lang, epochs=len(pipeline["epoch"])), "C0"),
        (notebook, _t("retrained_notebook", lang, epochs=len(notebook["epoch"])), "C3"),
    )
    title = _t("retrained_title", lang, model=model)
    return curve_figures.fig_accuracy_runs(runs, title, lang)
