"""The figures of what the evaluation found: a model's confusion matrix, the test digits it got
wrong most confidently, and every model's test accuracy against its size."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from intro_cnn.reporting import plotting
from intro_cnn.reporting.plotting import label

if TYPE_CHECKING:
    from matplotlib.figure import Figure

WRONG_COLUMNS = 4  # digits per row of the gallery


def format_prob(p: float) -> str:
    """``p = 0.987``, but ``p > 0.999`` rather than ``1.000``: a float32 softmax rounds
    probabilities above 1 - 6e-8 to exactly 1, and a wrong answer is never certain."""
    return "p > 0.999" if p >= 0.9995 else f"p = {p:.3f}"


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
            plotting.bare_axes(ax)
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


def fig_accuracy_by_seed(
    spread: Mapping[str, tuple[Mapping[int, float], tuple[float, float] | None]], lang: str
) -> Figure:
    """Every seed's test accuracy per model as points, with the mean as a bar and the 95 %
    interval of the mean as a vertical line beside them: how far apart the models are, against
    how far apart their seeds are."""
    with plotting.plot_style():
        fig = plotting.new_figure(plotting.FIGSIZE_WIDE)
        ax = fig.add_subplot()
        labelled: set[str] = set()

        def once(key: str) -> str | None:
            if key in labelled:
                return None
            labelled.add(key)
            return label(key, lang)

        for i, (per_seed, interval) in enumerate(spread.values()):
            values = list(per_seed.values())
            n = len(values)
            offsets = [0.3 * (k - (n - 1) / 2) / max(n - 1, 1) for k in range(n)]
            ax.plot(
                [i + o for o in offsets],
                values,
                "o",
                color="C0",
                alpha=0.75,
                label=once("seed_run"),
            )
            mean = sum(values) / n
            ax.hlines(mean, i - 0.22, i + 0.22, color="C1", linewidth=2.5, label=once("seed_mean"))
            if interval is not None:
                ax.vlines(
                    i + 0.3, *interval, color="C1", linewidth=1.5, label=once("seed_interval")
                )
            ax.annotate(
                f"n={n}", (i, max(values)), xytext=(0, 8), textcoords="offset points", ha="center"
            )
        ax.set_xticks(range(len(spread)), list(spread))
        ax.set_xlim(-0.6, len(spread) - 0.4)
        ax.margins(y=0.2)
        low, high = ax.get_ylim()
        ax.set_ylim(low, high + 0.4 * (high - low))  # headroom for the legend
        ax.set_title(label("seeds_title", lang))
        ax.set_ylabel(label("test_accuracy", lang))
        ax.grid(True, axis="y")
        ax.legend(loc="upper right")
    return fig
