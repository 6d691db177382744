"""Shared figure helpers: complete label tables, no global side effects, reproducible PNGs."""

from __future__ import annotations

import io
import subprocess
import sys

import matplotlib as mpl
import numpy as np
import pytest
from PIL import Image

from intro_cnn import config
from intro_cnn.reporting import plotting


def test_spanish_labels_follow_the_notebook():
    assert plotting.label("accuracy", "es") == "precisión"
    assert plotting.label("loss", "es") == "pérdida"
    assert plotting.label("epoch", "es") == "época"
    assert plotting.label("val_accuracy", "es") == "precisión de validación"
    assert plotting.label("val_loss", "es") == "pérdida de validación"
    assert plotting.label("val_loss", "en") == "validation loss"


def test_label_fills_placeholders_and_rejects_unknowns():
    assert "15" in plotting.label("gaussian_1d_title", "en", taps=15)
    with pytest.raises(KeyError, match="no_such_key"):
        plotting.label("no_such_key", "es")
    with pytest.raises(KeyError, match="fr"):
        plotting.label("loss", "fr")


def test_plot_style_leaves_global_rcparams_alone():
    before = dict(mpl.rcParams)
    with plotting.plot_style():
        assert mpl.rcParams["font.size"] == plotting.STYLE["font.size"]
        plotting.new_figure()
    assert dict(mpl.rcParams) == before


def test_import_does_not_load_pyplot_or_pick_a_backend():
    code = (
        "import sys, intro_cnn.reporting.plotting, stages.convolutions; "
        "print('matplotlib.pyplot' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=config.ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def _figure():
    with plotting.plot_style():
        fig = plotting.new_figure((4.0, 3.0))
        ax = fig.add_subplot()
        ax.plot(np.arange(10), np.arange(10) ** 2, "o-")
        ax.set_title(plotting.label("loss", "es"))
    return fig


def test_save_figure_writes_a_reproducible_png_and_no_temp_files(tmp_path):
    a, b = tmp_path / "out" / "a.png", tmp_path / "out" / "b.png"
    plotting.save_figure(_figure(), a, dpi=50)
    plotting.save_figure(_figure(), b, dpi=50)
    assert a.read_bytes() == b.read_bytes()
    assert sorted(p.name for p in a.parent.iterdir()) == ["a.png", "b.png"]
    with Image.open(a) as im:
        assert im.format == "PNG"
        assert im.size == (200, 150)  # figsize * dpi
    # The version tag is dropped: output does not depend on the matplotlib release.
    assert b"matplotlib" not in a.read_bytes()
    assert plotting.figure_png_bytes(_figure(), dpi=50) == a.read_bytes()


def test_save_figure_failure_leaves_nothing(tmp_path):
    target = tmp_path / "bad.png"
    with pytest.raises(ValueError):
        plotting.save_figure(_figure(), target, dpi=-1)
    assert list(tmp_path.iterdir()) == []


def _grid_figure():
    """A small filter-grid-like figure: bare cells, one row label, one title, a colour bar."""
    with plotting.plot_style():
        fig = plotting.new_figure((4.0, 3.0))
        grid = fig.add_gridspec(3, 4)
        axes = []
        for i in range(3):
            for j in range(4):
                ax = fig.add_subplot(grid[i, j])
                im = ax.imshow(np.arange(9.0).reshape(3, 3) * (i + j), vmin=0, vmax=40)
                ax.set_xticks([])
                ax.set_yticks([])
                axes.append(ax)
        axes[0].set_ylabel("row 1")
        axes[1].set_title("filter 2")
        fig.colorbar(im, ax=axes)
    return fig


def test_blank_axes_are_hidden_and_the_image_is_the_same():
    fig = _grid_figure()
    plotting.hide_blank_axes(fig)
    cells, colorbar = fig.axes[:12], fig.axes[12]
    assert not any(ax.xaxis.get_visible() for ax in cells)
    assert cells[0].yaxis.get_visible()  # its label is drawn
    assert not any(ax.yaxis.get_visible() for ax in cells[1:])
    assert colorbar.yaxis.get_visible()  # it has ticks
    # Rendering without the helper (as matplotlib would) gives the same bytes.
    untouched = _grid_figure()
    buf = io.BytesIO()
    with plotting.plot_style():
        untouched.savefig(buf, format="png", dpi=50, metadata=plotting.PNG_METADATA)
    assert plotting.figure_png_bytes(fig, dpi=50) == buf.getvalue()
