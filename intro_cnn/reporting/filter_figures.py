"""The figures of a network's convolutions: its learned filters, and the feature maps its two
convolutions compute on a few training images (the notebook draws both for the small CNN)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from intro_cnn.reporting import plotting
from intro_cnn.reporting.errors import VisualizeError
from intro_cnn.reporting.plotting import label

if TYPE_CHECKING:
    from matplotlib.figure import Figure


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
            plotting.bare_axes(ax)
            row1.append(ax)
        row1[0].set_ylabel(label("layer_n", lang, n=1))
        for i in range(cin2):
            for j in range(n2):
                ax = fig.add_subplot(grid[i + 2, j])
                im2 = ax.imshow(k2[:, :, i, j], cmap="RdBu_r", vmin=-m2, vmax=m2)
                plotting.bare_axes(ax)
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
            plotting.bare_axes(ax)
            for row, maps, size, layer in ((top, maps1, size1, 1), (top + 1, maps2, size2, 2)):
                for j in range(maps.shape[-1]):
                    ax = fig.add_subplot(grid[row, j + 1])
                    ax.imshow(maps[k, :, :, j], cmap="viridis")
                    plotting.bare_axes(ax)
                    if k == 0 and row == top:
                        ax.set_title(label("filter_n", lang, n=j + 1))
                    if j == 0:
                        ax.set_ylabel(label("layer_size", lang, n=layer, size=size))
        fig.suptitle(label("feature_maps_title", lang, model=model))
    return fig
