"""The library's figures as notebook outputs: PNG bytes, rendered as the stages render them.

The figures are :class:`matplotlib.figure.Figure` objects made without pyplot (no backend, no
figure registry), which Jupyter would show as text. :func:`show` renders one with
:func:`intro_cnn.reporting.plotting.figure_png_bytes` (the report's dpi gives the report's
image) into an object IPython displays as ``image/png``; IPython itself is not imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from intro_cnn.reporting import plotting

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DEFAULT_DPI = 100


@dataclass(frozen=True)
class Png:
    """PNG bytes that a notebook cell displays as an image (IPython's ``_repr_png_``)."""

    data: bytes

    def _repr_png_(self) -> bytes:
        return self.data

    def __repr__(self) -> str:  # the text/plain beside the image
        return f"<PNG, {len(self.data)} bytes>"


def show(fig: Figure, dpi: int = DEFAULT_DPI) -> Png:
    """``fig`` rendered at ``dpi``, for a cell to display (its last expression)."""
    return Png(plotting.figure_png_bytes(fig, dpi))
