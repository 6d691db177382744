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

from stages import files

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# matplotlib is imported where figures are made, so a stage can check its params (and fail
# fast) before paying for it.

LANGS = ("es", "en")

# Every title, axis label and legend entry a figure shows. Spanish follows the notebook.
LABELS: dict[str, dict[str, str]] = {
    "es": {
        # Training curves (visualize stage).
        "accuracy": "precisión",
        "loss": "pérdida",
        "epoch": "época",
        "val_accuracy": "precisión de validación",
        "val_loss": "pérdida de validación",
        "train": "entrenamiento",
        "val": "validación",
        "test": "prueba",
        "model": "modelo",
        "true_label": "etiqueta real",
        "predicted_label": "etiqueta predicha",
        "confusion_matrix": "matriz de confusión",
        "wrong_predictions": "predicciones erróneas",
        "feature_maps": "mapas de características",
        "filters": "filtros",
        "layer": "capa",
        "image": "imagen",
        "probability": "probabilidad",
        "seconds": "segundos",
        # Convolution demos.
        "random_walk_title": "Paseo aleatorio y su versión suavizada",
        "random_walk": "paseo aleatorio",
        "smoothed": "suavizado (filtro gaussiano)",
        "step": "paso",
        "value": "valor",
        "gaussian_1d_title": "Filtro gaussiano 1D ({taps} coeficientes, suma 1)",
        "tap": "coeficiente",
        "weight": "peso",
        "image_title": "Imagen original",
        "gaussian_2d_title": "Filtro gaussiano 2D",
        "blurred_title": "Imagen suavizada (filtro gaussiano 2D por canal)",
        "grey_title": "Imagen en escala de grises",
        "gradient_title": "Filtro de bordes (gradiente horizontal del gaussiano)",
        "edges_title": "Bordes (convolución con el filtro de gradiente)",
        "row": "fila",
        "column": "columna",
        "intensity": "intensidad",
        "response": "respuesta",
        # Network figures (visualize stage).
        "history_title": "Curvas de entrenamiento de {model}",
        "history_zoom_title": "Precisión de {model} (eje vertical de 0.9 a 1)",
        "filters_title": "Filtros aprendidos por {model} (3×3)",
        "layer_n": "capa {n}",
        "layer_size": "capa {n}\n{size}",
        "layer_channel": "capa {layer}\ncanal {channel}",
        "filter_n": "filtro {n}",
        "feature_maps_title": "Mapas de características de {model}",
        "digit": "dígito {label}",
        "bn_title": "Precisión por época: {plain} frente a {bn}",
        "curve": "{model}, {split}",
        "confusion_title": "Matriz de confusión de {model} (prueba)",
        "images": "imágenes",
        "wrong_title": "Errores más seguros de {model}",
        "wrong_item": "real {true}, predicha {pred}\n{prob}",
        "no_wrong": "ningún error en prueba",
        "params_title": "Precisión en prueba frente a número de parámetros",
        "params_axis": "parámetros (escala logarítmica)",
        "test_accuracy": "precisión en prueba",
    },
    "en": {
        "accuracy": "accuracy",
        "loss": "loss",
        "epoch": "epoch",
        "val_accuracy": "validation accuracy",
        "val_loss": "validation loss",
        "train": "training",
        "val": "validation",
        "test": "test",
        "model": "model",
        "true_label": "true label",
        "predicted_label": "predicted label",
        "confusion_matrix": "confusion matrix",
        "wrong_predictions": "wrong predictions",
        "feature_maps": "feature maps",
        "filters": "filters",
        "layer": "layer",
        "image": "image",
        "probability": "probability",
        "seconds": "seconds",
        "random_walk_title": "Random walk and its smoothed version",
        "random_walk": "random walk",
        "smoothed": "smoothed (Gaussian filter)",
        "step": "step",
        "value": "value",
        "gaussian_1d_title": "1-D Gaussian filter ({taps} taps, sum 1)",
        "tap": "tap",
        "weight": "weight",
        "image_title": "Original image",
        "gaussian_2d_title": "2-D Gaussian filter",
        "blurred_title": "Blurred image (2-D Gaussian filter per channel)",
        "grey_title": "Greyscale image",
        "gradient_title": "Edge filter (horizontal gradient of the Gaussian)",
        "edges_title": "Edges (convolution with the gradient filter)",
        "row": "row",
        "column": "column",
        "intensity": "intensity",
        "response": "response",
        "history_title": "Training curves of {model}",
        "history_zoom_title": "Accuracy of {model} (vertical axis from 0.9 to 1)",
        "filters_title": "Filters learned by {model} (3×3)",
        "layer_n": "layer {n}",
        "layer_size": "layer {n}\n{size}",
        "layer_channel": "layer {layer}\nchannel {channel}",
        "filter_n": "filter {n}",
        "feature_maps_title": "Feature maps of {model}",
        "digit": "digit {label}",
        "bn_title": "Accuracy per epoch: {plain} vs {bn}",
        "curve": "{model}, {split}",
        "confusion_title": "Confusion matrix of {model} (test)",
        "images": "images",
        "wrong_title": "Most confident mistakes of {model}",
        "wrong_item": "true {true}, predicted {pred}\n{prob}",
        "no_wrong": "no mistakes on the test set",
        "params_title": "Test accuracy vs number of parameters",
        "params_axis": "parameters (log scale)",
        "test_accuracy": "test accuracy",
    },
}


def label(key: str, lang: str, **fields: Any) -> str:
    """The text for ``key`` in ``lang``; ``fields`` fill ``{placeholders}`` in it."""
    if lang not in LABELS:
        raise KeyError(f"Unknown language {lang!r}: valid ones are {sorted(LABELS)}.")
    try:
        text = LABELS[lang][key]
    except KeyError:
        raise KeyError(
            f"No label {key!r} for language {lang!r}: add it to LABELS in stages/plotting.py."
        ) from None
    return text.format(**fields) if fields else text


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


# Agg writes only this tag unless asked; None drops it, so output does not vary with the
# matplotlib version string.
PNG_METADATA: dict[str, Any] = {"Software": None}


def figure_png_bytes(fig: Figure, dpi: int) -> bytes:
    """Render ``fig`` as PNG bytes (no file touched)."""
    buf = io.BytesIO()
    with plot_style():
        fig.savefig(buf, format="png", dpi=dpi, metadata=PNG_METADATA)
    return buf.getvalue()


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int) -> None:
    """Write ``fig`` to ``path`` as PNG, atomically (a failed save leaves no file behind)."""
    with files.atomic_path(path) as tmp, plot_style():
        # The temporary name ends in ".tmp": the format must be given explicitly.
        fig.savefig(tmp, format="png", dpi=dpi, metadata=PNG_METADATA)
