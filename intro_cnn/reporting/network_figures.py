"""The network figures the visualize stage draws, from numbers already read (no file, no model).

Per model: the training curves (the notebook's ``plot_history``), the test confusion matrix and
a gallery of the test digits the model got wrong most confidently. For ``ZOOM_MODEL``: its
accuracy curves zoomed. For ``FILTER_MODEL``: its learned filters and the feature maps of its
two convolutions. Across models: the batch-normalisation pair's accuracy per epoch, and test
accuracy against parameter count. :func:`make_figures` returns them all, in the report's order,
with the :class:`FigureEntry` that ``index.json`` lists. Each family of figures is drawn in its
own module (:mod:`~intro_cnn.reporting.curve_figures`, :mod:`~intro_cnn.reporting.filter_figures`,
:mod:`~intro_cnn.reporting.evaluation_figures`); matplotlib is imported only when a figure is
drawn (through :mod:`intro_cnn.reporting.plotting`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from intro_cnn.evaluation import claims
from intro_cnn.reporting.curve_figures import fig_accuracy_zoom, fig_bn_comparison, fig_history
from intro_cnn.reporting.evaluation_figures import (
    fig_accuracy_by_seed,
    fig_accuracy_vs_params,
    fig_confusion,
    fig_wrong,
)
from intro_cnn.reporting.filter_figures import fig_feature_maps, fig_filters

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# The notebook draws filters and feature maps of the small CNN only (8 filters fit a page).
FILTER_MODEL = "cnn_small"
# The model whose accuracy curves are shown again, the y axis limited to curve_figures.ZOOM_YLIM.
ZOOM_MODEL = "cnn"
# The batch-normalisation comparison, (without, with): the models the batchnorm claim compares.
_BN_MODEL, _PLAIN_MODEL = claims.CLAIM_MODELS["batchnorm"]
BN_PAIR = (_PLAIN_MODEL, _BN_MODEL)


@dataclass(frozen=True)
class FigureEntry:
    """One figure of the stage: file stem, what kind of figure, and the models it shows."""

    name: str
    kind: str
    models: tuple[str, ...]

    @property
    def file(self) -> str:
        return f"{self.name}.png"


@dataclass(frozen=True)
class ModelResults:
    """What the figures need of one trained and evaluated model."""

    history: Mapping[str, np.ndarray]  # each history.csv column, one value per epoch
    confusion: np.ndarray  # (C, C), row = true class
    wrong: Sequence[Mapping[str, Any]]  # wrong.json entries, surest first
    wrong_images: np.ndarray  # (len(wrong), 28, 28) test images of those entries
    test_accuracy: float
    params: int
    # Test accuracy of every seed the model was trained with (designated first), and the 95 %
    # interval of their mean (None with one seed): compare's ``seeds`` entry.
    seed_accuracies: Mapping[int, float] = field(default_factory=dict)
    interval: tuple[float, float] | None = None


@dataclass(frozen=True)
class ConvDetails:
    """Filters and feature maps of the filter model (``FILTER_MODEL``)."""

    kernels: Sequence[np.ndarray]  # kernel of each Conv2D: (kh, kw, in, out)
    images: np.ndarray  # (N, 28, 28) the training images the maps come from
    labels: np.ndarray  # (N,) their labels
    maps1: np.ndarray  # (N, H1, W1, F1) output of the first convolution
    maps2: np.ndarray  # (N, H2, W2, F2) output of the second


def make_figures(
    results: Mapping[str, ModelResults], conv: ConvDetails | None, lang: str
) -> list[tuple[FigureEntry, Figure]]:
    """Every figure of the stage, in the report's order.

    Figures tied to a model name (zoom, filters, feature maps, batch-norm comparison) are
    skipped when that model is not among ``results``.
    """
    out: list[tuple[FigureEntry, Figure]] = []
    for name, r in results.items():
        out.append(
            (FigureEntry(f"history_{name}", "history", (name,)), fig_history(r.history, name, lang))
        )
    if ZOOM_MODEL in results:
        out.append(
            (
                FigureEntry(f"history_zoom_{ZOOM_MODEL}", "history_zoom", (ZOOM_MODEL,)),
                fig_accuracy_zoom(results[ZOOM_MODEL].history, ZOOM_MODEL, lang),
            )
        )
    if conv is not None:
        out.append(
            (
                FigureEntry(f"filters_{FILTER_MODEL}", "filters", (FILTER_MODEL,)),
                fig_filters(conv.kernels, FILTER_MODEL, lang),
            )
        )
        out.append(
            (
                FigureEntry(f"feature_maps_{FILTER_MODEL}", "feature_maps", (FILTER_MODEL,)),
                fig_feature_maps(
                    conv.images, conv.labels, conv.maps1, conv.maps2, FILTER_MODEL, lang
                ),
            )
        )
    if all(m in results for m in BN_PAIR):
        plain, bn = BN_PAIR
        out.append(
            (
                FigureEntry("bn_comparison", "bn_comparison", BN_PAIR),
                fig_bn_comparison(results[plain].history, results[bn].history, BN_PAIR, lang),
            )
        )
    for name, r in results.items():
        out.append(
            (
                FigureEntry(f"confusion_{name}", "confusion", (name,)),
                fig_confusion(r.confusion, name, lang),
            )
        )
    for name, r in results.items():
        out.append(
            (
                FigureEntry(f"wrong_{name}", "wrong", (name,)),
                fig_wrong(r.wrong, r.wrong_images, name, lang),
            )
        )
    spread = {n: (r.seed_accuracies, r.interval) for n, r in results.items() if r.seed_accuracies}
    if spread:
        out.append(
            (
                FigureEntry("accuracy_by_seed", "accuracy_by_seed", tuple(spread)),
                fig_accuracy_by_seed(spread, lang),
            )
        )
    points = {name: (r.params, r.test_accuracy) for name, r in results.items()}
    out.append(
        (
            FigureEntry("accuracy_vs_params", "accuracy_vs_params", tuple(results)),
            fig_accuracy_vs_params(points, lang),
        )
    )
    return out


def index_json(entries: Sequence[FigureEntry], lang: str) -> dict[str, Any]:
    """What ``index.json`` holds: each figure's file, kind (the report's caption key) and
    models, in the report's order."""
    return {
        "lang": lang,
        "figures": [{"file": e.file, "kind": e.kind, "models": list(e.models)} for e in entries],
    }
