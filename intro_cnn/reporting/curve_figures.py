"""The training-curve figures: a model's history, its accuracy zoomed, and the
batch-normalisation pair's accuracy per epoch (from each ``history.csv`` as float arrays)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from intro_cnn.reporting import plotting
from intro_cnn.reporting.plotting import label

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# The zoomed accuracy curves' y axis: the last fractions of a percent, where the models differ.
ZOOM_YLIM = (0.9, 1.0)


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


def fig_accuracy_runs(
    runs: Sequence[tuple[Mapping[str, np.ndarray], str, str]], title: str, lang: str
) -> Figure:
    """Training (dashed) and validation (solid) accuracy per epoch of several trainings on one
    axis; ``runs`` holds each one's history, its name in the legend and its colour."""
    with plotting.plot_style():
        fig = plotting.new_figure(plotting.FIGSIZE_WIDE)
        ax = fig.add_subplot()
        for hist, name, color in runs:
            for key, split, style in (("accuracy", "train", "--"), ("val_accuracy", "val", "-o")):
                ax.plot(
                    hist["epoch"],
                    hist[key],
                    style,
                    color=color,
                    markersize=4,
                    label=label("curve", lang, model=name, split=label(split, lang)),
                )
        ax.set_title(title)
        ax.set_xlabel(label("epoch", lang))
        ax.set_ylabel(label("accuracy", lang))
        ax.xaxis.set_major_locator(_integer_ticks())
        ax.grid(True)
        fig.legend(loc="outside lower center", ncols=2)
    return fig


def fig_bn_comparison(
    plain: Mapping[str, np.ndarray],
    bn: Mapping[str, np.ndarray],
    names: tuple[str, str],
    lang: str,
) -> Figure:
    """Training and validation accuracy per epoch of a model without and with batch
    normalisation, on one axis."""
    title = label("bn_title", lang, plain=names[0], bn=names[1])
    return fig_accuracy_runs(((plain, names[0], "C0"), (bn, names[1], "C2")), title, lang)
