"""Figure helpers shared by the stages that draw: labels in two languages, one style, PNG output.

Figures are built with matplotlib's object API (:class:`matplotlib.figure.Figure`), never
``pyplot``: no backend is selected, no global figure registry fills up, and importing this
module changes nothing. The look comes from :data:`STYLE`, applied only inside
:func:`plot_style` blocks, so other code's rcParams are left alone.

PNG files are byte-reproducible: matplotlib's "Software" tag (its version) is dropped, Agg
writes no timestamp, and the fonts are the ones matplotlib ships.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from intro_cnn import i18n
from intro_cnn.runtime import files

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# matplotlib is imported where figures are made, so a stage can check its params (and fail
# fast) before paying for it.


def label(key: str, lang: str, **fields: Any) -> str:
    """A figure's title, axis label or legend entry in ``lang`` (the ``figures`` texts)."""
    return i18n.text("figures", key, lang, **fields)


# Sizes in inches: at the default 100 dpi a figure is 700 px wide, and 11-12 pt text stays
# readable when the figure is shrunk to a page's column.
FIGSIZE_WIDE = (7.0, 4.0)
FIGSIZE_SQUARE = (6.0, 5.0)
FIGSIZE_IMAGE = (6.0, 6.5)

STYLE: dict[str, Any] = {
    "font.family": "DejaVu Sans",  # ships with matplotlib: same glyphs (and bytes) everywhere
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "figure.titlesize": 13,
    "axes.grid": False,
    "grid.alpha": 0.3,
    "savefig.facecolor": "white",
}


@contextlib.contextmanager
def plot_style() -> Iterator[None]:
    """Apply :data:`STYLE` for the duration of the block (rcParams restored afterwards).

    Text properties are read when an artist is created, so build the whole figure inside.
    """
    import matplotlib as mpl

    with mpl.rc_context(STYLE):
        yield


def new_figure(figsize: tuple[float, float] = FIGSIZE_WIDE) -> Figure:
    """A figure detached from pyplot, with constrained layout so labels are never cropped."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def bare_axes(ax: Any) -> None:
    """No ticks on ``ax``: an image's pixel coordinates say nothing."""
    ax.set_xticks([])
    ax.set_yticks([])


# Agg writes only this tag unless asked; None drops it, so output does not vary with the
# matplotlib version string.
PNG_METADATA: dict[str, Any] = {"Software": None}


def hide_blank_axes(fig: Figure) -> None:
    """Make every x or y axis that draws nothing (no ticks, no label) invisible.

    The image is the same, and constrained layout skips them: the filter and feature-map
    grids have hundreds of bare cells, each of which it would measure on every render.
    """
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            ticks = len(axis.get_ticklocs()) + len(axis.get_ticklocs(minor=True))
            if not ticks and not axis.get_label_text():
                axis.set_visible(False)


def figure_png_bytes(fig: Figure, dpi: int) -> bytes:
    """Render ``fig`` as PNG bytes (no file touched)."""
    hide_blank_axes(fig)
    buf = io.BytesIO()
    with plot_style():
        fig.savefig(buf, format="png", dpi=dpi, metadata=PNG_METADATA)
    return buf.getvalue()


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int) -> None:
    """Write ``fig`` to ``path`` as PNG, atomically (a failed save leaves no file behind)."""
    hide_blank_axes(fig)
    with files.atomic_path(path) as tmp, plot_style():
        # The temporary name ends in ".tmp": the format must be given explicitly.
        fig.savefig(tmp, format="png", dpi=dpi, metadata=PNG_METADATA)
