"""The network figures the visualize stage draws, from numbers already read (no file, no model).

Per model: the training curves (the notebook's ``plot_history``), the test confusion matrix and
a gallery of the test digits the model got wrong most confidently. For ``ZOOM_MODEL``: its
accuracy curves zoomed. For ``FILTER_MODEL``: its learned filters and the feature maps of its
two convolutions. Across models: the batch-normalisation pair's accuracy per epoch, and test
accuracy against parameter count. :func:`make_figures` returns them all, in the report's order,
with the :class:`FigureEntry` that ``index.json`` lists. matplotlib is imported only when a
figure is drawn (through :mod:`intro_cnn.reporting.plotting`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from intro_cnn.reporting import plotting
from intro_cnn.reporting.plotting import label
from intro_cnn.runtime import errors

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# The notebook draws filters and feature maps of the small CNN only (8 filters fit a page).
FILTER_MODEL = "cnn_small"
# The model whose accuracy curves are shown again with the y axis limited to ZOOM_YLIM.
ZOOM_MODEL = "cnn"
ZOOM_YLIM = (0.9, 1.0)
# The batch-normalisation comparison: (without, with).
BN_PAIR = ("cnn_small", "cnn_small_bn")
WRONG_COLUMNS = 4


class VisualizeError(errors.StageError):
    """An input of the visualize stage is missing or malformed (the message says the fix)."""


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


@dataclass(frozen=True)
class ConvDetails:
    """Filters and feature maps of the filter model (``FILTER_MODEL``)."""

    kernels: Sequence[np.ndarray]  # kernel of each Conv2D: (kh, kw, in, out)
    images: np.ndarray  # (N, 28, 28) the training images the maps come from
    labels: np.ndarray  # (N,) their labels
    maps1: np.ndarray  # (N, H1, W1, F1) output of the first convolution
    maps2: np.ndarray  # (N, H2, W2, F2) output of the second


def format_prob(p: float) -> str:
    """``p = 0.987``, but ``p > 0.999`` rather than ``1.000``: a float32 softmax rounds
    probabilities above 1 - 6e-8 to exactly 1, and a wrong answer is never certain."""
    return "p > 0.999" if p >= 0.9995 else f"p = {p:.3f}"


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------
def _bare(ax: Any) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _integer_ticks() -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def fig_history(history: Mapping[str, np.ndarray], model: str, lang: str) -> Figure:
    """The notebook's ``plot_history``: accuracies solid on the left axis, losses dashed on a
    twin axis on the right; blue = training, orange = validation."""
    epoch = history["epoch"]
    with plotting.plot_style():
        fig = plotting.new_figure(plotting.FIGSIZE_WIDE)
        ax = fig.add_subplot()
        ax_loss = ax.twinx()
        lines = [
            ax.plot(epoch, history["accuracy"], "-", color="C0", label=label("accuracy", lang)),
            ax.plot(
                epoch, history["val_accuracy"], "-", color="C1", label=label("val_accuracy", lang)
            ),
            ax_loss.plot(epoch, history["loss"], "--", color="C0", label=label("loss", lang)),
            ax_loss.plot(
                epoch, history["val_loss"], "--", color="C1", label=label("val_loss", lang)
            ),
        ]
        handles = [h for group in lines for h in group]
        ax.set_title(label("history_title", lang, model=model))
        ax.set_xlabel(label("epoch", lang))
        ax.set_ylabel(label("accuracy", lang))
        ax_loss.set_ylabel(label("loss", lang))
        ax.xaxis.set_major_locator(_integer_ticks())
        ax.grid(True)
        # Below the axes: the curves cross the whole plot, a legend inside would hide some.
        fig.legend(handles=handles, loc="outside lower center", ncols=2)
    return fig


def fig_accuracy_zoom(
    history: Mapping[str, np.ndarray],
    model: str,
    lang: str,
    ylim: tuple[float, float] = ZOOM_YLIM,
) -> Figure:
    """Training and validation accuracy with the y axis limited to ``ylim``: the last
    fractions of a percent, where the models differ."""
    epoch = history["epoch"]
    with plotting.plot_style():
        fig = plotting.new_figure(plotting.FIGSIZE_WIDE)
        ax = fig.add_subplot()
        ax.plot(epoch, history["accuracy"], "-o", color="C0", label=label("accuracy", lang))
        ax.plot(epoch, history["val_accuracy"], "-o", color="C1", label=label("val_accuracy", lang))
        ax.set_ylim(*ylim)
        ax.set_title(label("history_zoom_title", lang, model=model))
        ax.set_xlabel(label("epoch", lang))
        ax.set_ylabel(label("accuracy", lang))
        ax.xaxis.set_major_locator(_integer_ticks())
        ax.grid(True)
        ax.legend(loc="lower right")
    return fig


def fig_filters(kernels: Sequence[np.ndarray], model: str, lang: str) -> Figure:
    """The learned filters of the first two convolutions, laid out as in the notebook.

    Row 1: the first layer's filters ``kernels[0][:, :, 0, j]``. Then one row per input
    channel ``i`` of the second layer: ``kernels[1][:, :, i, j]``; column ``j`` is output filter
    ``j`` in every row. Each layer has one colour scale, symmetric around 0 (red positive, blue
    negative, white 0), with its colour bar.
    """
    if len(kernels) < 2:
        raise VisualizeError(f"Model {model!r} needs two Conv2D layers for the filter figure.")
    k1, k2 = np.asarray(kernels[0]), np.asarray(kernels[1])
    n1, cin2, n2 = k1.shape[3], k2.shape[2], k2.shape[3]
    cols = max(n1, n2)
    m1 = float(np.abs(k1[:, :, 0, :]).max()) or 1.0
    m2 = float(np.abs(k2).max()) or 1.0
    with plotting.plot_style():
        fig = plotting.new_figure((1.0 * cols + 1.8, 1.0 * (cin2 + 1) + 1.4))
        # A thin empty row separates the two layers.
        grid = fig.add_gridspec(cin2 + 2, cols, height_ratios=[1, 0.15] + [1] * cin2)
        row1, rest = [], []
        for j in range(n1):
            ax = fig.add_subplot(grid[0, j])
            im1 = ax.imshow(k1[:, :, 0, j], cmap="RdBu_r", vmin=-m1, vmax=m1)
            ax.set_title(label("filter_n", lang, n=j + 1))
            _bare(ax)
            row1.append(ax)
        row1[0].set_ylabel(label("layer_n", lang, n=1))
        for i in range(cin2):
            for j in range(n2):
                ax = fig.add_subplot(grid[i + 2, j])
                im2 = ax.imshow(k2[:, :, i, j], cmap="RdBu_r", vmin=-m2, vmax=m2)
                _bare(ax)
                if j == 0:
                    ax.set_ylabel(label("layer_channel", lang, layer=2, channel=i + 1))
                rest.append(ax)
        fig.colorbar(im1, ax=row1, aspect=6).set_label(label("weight", lang))
        fig.colorbar(im2, ax=rest, aspect=40).set_label(label("weight", lang))
        fig.suptitle(label("filters_title", lang, model=model))
    return fig


def fig_feature_maps(
    images: np.ndarray,
    labels: np.ndarray,
    maps1: np.ndarray,
    maps2: np.ndarray,
    model: str,
    lang: str,
) -> Figure:
    """Each image beside its first-layer maps (top row) and second-layer maps (bottom row).

    Every map has its own colour scale (yellow = strongest response in that map).
    """
    n, f1, f2 = len(images), maps1.shape[-1], maps2.shape[-1]
    cols = max(f1, f2)
    size1 = f"{maps1.shape[1]}×{maps1.shape[2]}"
    size2 = f"{maps2.shape[1]}×{maps2.shape[2]}"
    ratios: list[float] = []
    for k in range(n):
        ratios += [1, 1] + ([0.25] if k < n - 1 else [])
    with plotting.plot_style():
        fig = plotting.new_figure((1.0 * (cols + 1) + 1.0, 2.0 * n + 0.25 * (n - 1) + 1.0))
        grid = fig.add_gridspec(len(ratios), cols + 1, height_ratios=ratios)
        for k in range(n):
            top = 3 * k
            ax = fig.add_subplot(grid[top : top + 2, 0])
            ax.imshow(np.asarray(images[k]).squeeze(), cmap="gray")
            ax.set_title(label("digit", lang, label=int(labels[k])))
            _bare(ax)
            for row, maps, size, layer in ((top, maps1, size1, 1), (top + 1, maps2, size2, 2)):
                for j in range(maps.shape[-1]):
                    ax = fig.add_subplot(grid[row, j + 1])
                    ax.imshow(maps[k, :, :, j], cmap="viridis")
                    _bare(ax)
                    if k == 0 and row == top:
                        ax.set_title(label("filter_n", lang, n=j + 1))
                    if j == 0:
                        ax.set_ylabel(label("layer_size", lang, n=layer, size=size))
        fig.suptitle(label("feature_maps_title", lang, model=model))
    return fig


def fig_bn_comparison(
    plain: Mapping[str, np.ndarray],
    bn: Mapping[str, np.ndarray],
    names: tuple[str, str],
    lang: str,
) -> Figure:
    """Training (dashed) and validation (solid) accuracy per epoch of a model without and with
    batch normalisation, on one axis."""
    with plotting.plot_style():
        fig = plotting.new_figure(plotting.FIGSIZE_WIDE)
        ax = fig.add_subplot()
        for hist, name, color in ((plain, names[0], "C0"), (bn, names[1], "C2")):
            for key, split, style in (("accuracy", "train", "--"), ("val_accuracy", "val", "-o")):
                ax.plot(
                    hist["epoch"],
                    hist[key],
                    style,
                    color=color,
                    markersize=4,
                    label=label("curve", lang, model=name, split=label(split, lang)),
                )
        ax.set_title(label("bn_title", lang, plain=names[0], bn=names[1]))
        ax.set_xlabel(label("epoch", lang))
        ax.set_ylabel(label("accuracy", lang))
        ax.xaxis.set_major_locator(_integer_ticks())
        ax.grid(True)
        fig.legend(loc="outside lower center", ncols=2)
    return fig


def fig_confusion(confusion: np.ndarray, model: str, lang: str) -> Figure:
    """Annotated confusion counts, row = true label. The colour scale is logarithmic so that
    the few mistakes stand out from the large diagonal; empty cells stay white."""
    cm = np.asarray(confusion)
    n = cm.shape[0]
    vmax = max(float(cm.max()), 10.0)
    with plotting.plot_style():
        fig = plotting.new_figure((7.0, 6.2))
        ax = fig.add_subplot()
        import matplotlib as mpl
        from matplotlib.colors import LogNorm

        cmap = mpl.colormaps["Blues"].with_extremes(bad="white")
        im = ax.imshow(
            np.ma.masked_equal(cm, 0), cmap=cmap, norm=LogNorm(vmin=1, vmax=vmax), aspect="equal"
        )
        for i in range(n):
            for j in range(n):
                v = int(cm[i, j])
                dark = v > 0 and math.log(v) / math.log(vmax) > 0.6
                ax.text(
                    j,
                    i,
                    str(v),
                    ha="center",
                    va="center",
                    fontsize=10,
                    color="white" if dark else ("0.6" if v == 0 else "black"),
                )
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        ax.set_title(label("confusion_title", lang, model=model))
        ax.set_xlabel(label("predicted_label", lang))
        ax.set_ylabel(label("true_label", lang))
        fig.colorbar(im, ax=ax, shrink=0.85).set_label(label("images", lang))
    return fig


def fig_wrong(
    wrong: Sequence[Mapping[str, Any]], images: np.ndarray, model: str, lang: str
) -> Figure:
    """The test digits the model was surest of and got wrong, each titled with its true label,
    the prediction and the probability given to it."""
    n = len(wrong)
    cols = min(WRONG_COLUMNS, max(n, 1))
    rows = max(1, math.ceil(n / cols))
    with plotting.plot_style():
        fig = plotting.new_figure((2.0 * cols + 0.4, 2.3 * rows + 0.6))
        if n == 0:
            ax = fig.add_subplot()
            ax.text(0.5, 0.5, label("no_wrong", lang), ha="center", va="center")
            ax.set_axis_off()
        for k, entry in enumerate(wrong):
            ax = fig.add_subplot(rows, cols, k + 1)
            ax.imshow(np.asarray(images[k]).squeeze(), cmap="gray_r")
            ax.set_title(
                label(
                    "wrong_item",
                    lang,
                    true=entry["true"],
                    pred=entry["predicted"],
                    prob=format_prob(float(entry["probability"])),
                ),
                fontsize=10,
            )
            _bare(ax)
        fig.suptitle(label("wrong_title", lang, model=model))
    return fig


def fig_accuracy_vs_params(points: Mapping[str, tuple[int, float]], lang: str) -> Figure:
    """Test accuracy against parameter count (log x), each point named. Names of models with
    nearly the same size go on alternate sides so they do not overlap."""
    with plotting.plot_style():
        fig = plotting.new_figure(plotting.FIGSIZE_WIDE)
        ax = fig.add_subplot()
        ax.set_xscale("log")
        order = sorted(points, key=lambda m: points[m][0])
        prev_x, prev_left = None, True
        for name in order:
            n_params, acc = points[name]
            ax.plot([n_params], [acc], "o", color="C0", markersize=8)
            close = prev_x is not None and math.log10(n_params) - math.log10(prev_x) < 0.3
            left = close and not prev_left
            ax.annotate(
                name,
                (n_params, acc),
                xytext=(-9 if left else 9, 0),
                textcoords="offset points",
                ha="right" if left else "left",
                va="center",
            )
            prev_x, prev_left = n_params, left
        xs = [p for p, _ in points.values()]
        if xs:
            ax.set_xlim(min(xs) / 4, max(xs) * 4)
        ax.margins(y=0.2)
        ax.set_title(label("params_title", lang))
        ax.set_xlabel(label("params_axis", lang))
        ax.set_ylabel(label("test_accuracy", lang))
        ax.grid(True, which="both")
    return fig


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
