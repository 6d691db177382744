"""Stage ``report``: one self-contained HTML page with everything the pipeline produced.

The page follows the notebook: the convolution demos, then the networks (architectures,
training curves, filters, feature maps, the batch-normalisation comparison), then what the
notebook does not show: confusion matrices, the most confident mistakes, accuracy against size,
the comparison table and the verdicts on the notebook's two claims. It ends with the data
sources (with a warning when the demo image is a fallback) and the provenance of the run.

The page opens offline: images are embedded as base64 ``data:`` URIs, the CSS is inline, and
nothing is loaded from elsewhere. The one script is the drawing pad's (stages/drawpad.py),
inline with its weights; without JavaScript its section stays hidden. Every string read from a
file is HTML-escaped. Text is in ``report.lang`` (es, the notebook's language, or en).
"""

from __future__ import annotations

import base64
import csv
import html
import importlib.metadata
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stages import cli, config, drawpad, files, tracking

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)


# The convolution stage's figures, in the notebook's order (file stems under CONV_DIR).
CONV_FIGURES = (
    "01_random_walk",
    "02_gaussian_1d",
    "03_image",
    "04_gaussian_2d",
    "05_blurred",
    "06_grey",
    "07_gradient_filter",
    "08_edges",
)

# Network figure kinds (index.json "kind") grouped into the page's sections, in order.
NETWORK_SECTIONS = (
    ("sec_training", ("history", "history_zoom")),
    ("sec_filters", ("filters",)),
    ("sec_feature_maps", ("feature_maps",)),
    ("sec_bn", ("bn_comparison",)),
    ("sec_confusion", ("confusion",)),
    ("sec_wrong", ("wrong",)),
    ("sec_size", ("accuracy_vs_params",)),
)

# Provenance tags shown, in order (tracking.provenance_tags() plus the Keras version).
PROVENANCE_KEYS = ("git_commit", "git_dirty", "dvc_exp_name", "python", "keras")

# Every sentence of the page, per language. Captions may use {model}, {plain}, {bn}.
TEXT: dict[str, dict[str, str]] = {
    "es": {
        "title": "Introducción a las redes convolucionales",
        "subtitle": "Informe reproducible del pipeline DVC + MLflow",
        "intro": (
            "Este informe reproduce el cuaderno «Introducción a Redes Convolucionales». "
            "Primero, la convolución en una y dos dimensiones: suavizado con un filtro "
            "gaussiano y detección de bordes, con scipy.ndimage.convolve. Después, tres redes "
            "convolucionales de Keras entrenadas con MNIST (dígitos escritos a mano) y una red "
            "densa (MLP) como referencia. Todo lo que aparece aquí lo generan las etapas del "
            "pipeline a partir de params.yaml; cada entrenamiento queda registrado en MLflow."
        ),
        "contents": "Contenido",
        "figure": "Figura",
        "cap_again": "Como la figura {n}, para {model}.",
        "sec_conv": "Convoluciones",
        "conv_intro": (
            "Una convolución desliza un filtro (una pequeña tabla de pesos) sobre la señal o la "
            "imagen y, en cada posición, suma los productos de los pesos por los valores que "
            "cubre. Los bordes se tratan por reflexión, como en el cuaderno."
        ),
        "sec_networks": "Redes convolucionales",
        "networks_intro": (
            "Las redes aprenden sus propios filtros. cnn usa 32 filtros por capa convolucional, "
            "cnn_small 8, y cnn_small_bn añade normalización por lotes (batch normalization) a "
            "cnn_small; mlp es una red densa sin convoluciones."
        ),
        "sec_architectures": "Arquitecturas",
        "sec_training": "Curvas de entrenamiento",
        "sec_filters": "Filtros aprendidos",
        "sec_feature_maps": "Mapas de características",
        "sec_bn": "Normalización por lotes",
        "sec_confusion": "Matrices de confusión",
        "sec_wrong": "Errores más seguros",
        "sec_size": "Precisión y número de parámetros",
        "sec_comparison": "Comparación de modelos",
        "sec_claims": "Las afirmaciones del cuaderno, comprobadas",
        "sec_sources": "Fuentes de datos",
        "sec_provenance": "Procedencia",
        "col_layer": "capa",
        "col_type": "tipo",
        "col_shape": "forma de salida",
        "col_params": "parámetros",
        "total_params": "{model}: {n} parámetros",
        "col_model": "modelo",
        "col_epochs": "épocas",
        "col_train_seconds": "tiempo de entrenamiento (s)",
        "col_train_samples_per_s": "muestras/s (entrenamiento)",
        "col_val_accuracy": "precisión de validación",
        "col_test_accuracy": "precisión en prueba",
        "col_test_loss": "pérdida en prueba",
        "col_inference_images_per_s": "imágenes/s (inferencia)",
        "comparison_note": (
            "Precisión de validación: la de la última época, sobre la parte final del conjunto "
            "de entrenamiento que se reserva (preprocess.validation_split). Prueba: el conjunto "
            "de prueba de MNIST, que ningún modelo ve al entrenar. Los tiempos dependen de la "
            "máquina."
        ),
        "claim": "Afirmación",
        "verdict": "Veredicto",
        "holds": "se cumple",
        "partly holds": "se cumple en parte",
        "does not hold": "no se cumple",
        "not checked": "no comprobada",
        "part_yes": "sí",
        "part_no": "no",
        "part_none": "no comprobado",
        "claim_cnn_vs_mlp": (
            "La red convolucional (cnn) logra mejor precisión en prueba que la red densa (mlp) "
            "con muchos menos parámetros (menos de la mitad)."
        ),
        "claim_batchnorm": (
            "La normalización por lotes mejora la red pequeña (cnn_small_bn frente a "
            "cnn_small): mayor precisión de validación y de prueba, y una precisión de "
            "validación que sube más rápido en las primeras épocas."
        ),
        "part_better test accuracy": "mejor precisión en prueba",
        "part_far fewer parameters": "muchos menos parámetros (menos de la mitad)",
        "part_higher validation accuracy": "mayor precisión de validación",
        "part_higher test accuracy": "mayor precisión en prueba",
        "part_faster early rise": "subida más rápida en las primeras épocas",
        "reason_cnn_vs_mlp": (
            "Precisión en prueba: cnn {cnn_test_accuracy:.4f} frente a mlp "
            "{mlp_test_accuracy:.4f} ({diff:+.2f} puntos). Parámetros: cnn {cnn_params} frente "
            "a mlp {mlp_params} ({percent:.1f} % de los del mlp)."
        ),
        "reason_batchnorm": (
            "Precisión de validación: cnn_small_bn {cnn_small_bn_val_accuracy:.4f} frente a "
            "cnn_small {cnn_small_val_accuracy:.4f}. Precisión en prueba: cnn_small_bn "
            "{cnn_small_bn_test_accuracy:.4f} frente a cnn_small {cnn_small_test_accuracy:.4f}."
        ),
        "reason_batchnorm_early": (
            " Precisión de validación media en las épocas 1 a {early_epochs}: cnn_small_bn "
            "{cnn_small_bn_early_val_accuracy:.4f} frente a cnn_small "
            "{cnn_small_early_val_accuracy:.4f}; en la época 1: "
            "{cnn_small_bn_epoch1_val_accuracy:.4f} frente a {cnn_small_epoch1_val_accuracy:.4f}."
        ),
        "reason_missing": "Falta(n) en `models` de params.yaml: {models}.",
        "mnist": "MNIST",
        "demo_image": "Imagen de las convoluciones",
        "source": "origen",
        "location": "ubicación",
        "set_by": "indicada por",
        "file_sha256": "SHA-256 del archivo",
        "content_check": "contenido",
        "content_ok": "los SHA-256 de los cuatro arrays coinciden con params.yaml",
        "failed_sources": "orígenes que fallaron antes",
        "image_file": "archivo",
        "image_size": "tamaño (píxeles)",
        "fallback_warning": (
            "Atención: no se pudo obtener la imagen del cuaderno ({url}). Las figuras "
            "de convolución usan en su lugar la imagen de reserva de matplotlib ({file}), así "
            "que no coinciden con las del cuaderno. Para usar otra imagen, indica "
            "data.image_local en params.yaml o la variable DEMO_IMAGE."
        ),
        "git_commit": "commit de git",
        "git_dirty": "cambios sin commit",
        "dvc_exp_name": "experimento DVC",
        "python": "Python",
        "keras": "Keras",
        "mlflow_runs": "Ejecuciones de MLflow",
        "run_id": "id de la ejecución",
        "experiment": "experimento",
        "restored": "reutilizada",
        "restored_note": (
            "Una ejecución «reutilizada» es de una ejecución anterior del pipeline: DVC restauró "
            "el modelo de su caché en lugar de reentrenarlo. Las métricas de test y las figuras "
            "están en la ejecución padre de esta ejecución del pipeline."
        ),
        "params": "Parámetros (params.yaml)",
        "true": "sí",
        "false": "no",
        "unknown": "desconocido",
        # Figure captions.
        "cap_01_random_walk": (
            "Un paseo aleatorio (suma acumulada de pasos normales) y el mismo paseo convolucionado "
            "con un filtro gaussiano: cada punto pasa a ser una media ponderada de sus vecinos y "
            "las oscilaciones rápidas desaparecen."
        ),
        "cap_02_gaussian_1d": (
            "Los coeficientes del filtro gaussiano 1D. Suman 1, así que la convolución es un "
            "promedio: conserva el nivel de la señal."
        ),
        "cap_03_image": "La imagen de partida, con sus tres canales de color.",
        "cap_04_gaussian_2d": (
            "El filtro gaussiano 2D: producto exterior del filtro 1D consigo mismo. También suma 1."
        ),
        "cap_05_blurred": (
            "La imagen convolucionada con el filtro 2D, canal por canal: cada píxel es la media "
            "ponderada de su vecindario y la imagen se ve borrosa."
        ),
        "cap_06_grey": (
            "La imagen en escala de grises (media de los tres canales): la entrada del detector "
            "de bordes."
        ),
        "cap_07_gradient_filter": (
            "Diferencia horizontal del filtro gaussiano: pesos negativos (azul) a un lado y "
            "positivos (rojo) al otro, con suma 0. Responde a los cambios de brillo de izquierda "
            "a derecha y no a las zonas uniformes."
        ),
        "cap_08_edges": (
            "Respuesta de la imagen en grises al filtro de gradiente: los bordes verticales "
            "aparecen claros u oscuros según el sentido del cambio; las zonas planas quedan en "
            "gris medio."
        ),
        "cap_history": (
            "Precisión (línea continua, eje izquierdo) y pérdida (discontinua, eje derecho) de "
            "{model} en cada época, en entrenamiento (azul) y validación (naranja). Si la "
            "validación se separa del entrenamiento, el modelo empieza a sobreajustar."
        ),
        "cap_history_zoom": (
            "Las curvas de precisión de {model} con el eje vertical limitado a 0.9–1, para ver "
            "las diferencias de las últimas épocas."
        ),
        "cap_filters": (
            "Los filtros 3×3 aprendidos por {model}. Primera fila: los 8 filtros de la primera "
            "capa convolucional, que se aplican a la imagen. Filas siguientes: la segunda capa; la "
            "fila «canal i» son los pesos que cada filtro (columna) aplica al canal i de la salida "
            "de la primera capa. Rojo positivo, azul negativo, una escala de color por capa."
        ),
        "cap_feature_maps": (
            "Las primeras imágenes de entrenamiento y lo que producen las dos capas "
            "convolucionales de {model} (mapas de características): cada filtro resalta un tipo "
            "de trazo. La segunda capa, tras el max-pooling, trabaja a menor resolución. Cada "
            "mapa tiene su propia escala de color (amarillo: respuesta más fuerte)."
        ),
        "cap_bn_comparison": (
            "Precisión de entrenamiento (discontinua) y de validación (continua, con puntos) por "
            "época de {plain} y {bn} (con normalización por lotes): la comparación que el "
            "cuaderno anuncia al final."
        ),
        "cap_confusion": (
            "Matriz de confusión de {model} en el conjunto de prueba: cada fila es la etiqueta "
            "real y cada columna la predicha; fuera de la diagonal están los errores. La escala "
            "de color es logarítmica para que los errores, pocos, se distingan."
        ),
        "cap_wrong": (
            "Las imágenes de prueba que {model} clasificó mal con más seguridad, con la etiqueta "
            "real, la predicha y la probabilidad que el modelo dio a su respuesta."
        ),
        "cap_accuracy_vs_params": (
            "Precisión en prueba de cada modelo frente a su número de parámetros (eje horizontal "
            "logarítmico): cuanto más arriba y a la izquierda, más precisión con menos parámetros."
        ),
    },
    "en": {
        "title": "Introduction to convolutional networks",
        "subtitle": "Reproducible report of the DVC + MLflow pipeline",
        "intro": (
            "This report reproduces the notebook “Introducción a Redes Convolucionales” "
            "(Introduction to convolutional networks). First, convolution in one and two "
            "dimensions: smoothing with a Gaussian filter and edge detection, with "
            "scipy.ndimage.convolve. Then three Keras convolutional networks trained on MNIST "
            "(handwritten digits) and a dense network (MLP) as a baseline. Everything here is "
            "produced by the pipeline's stages from params.yaml; every training run is recorded "
            "in MLflow."
        ),
        "contents": "Contents",
        "figure": "Figure",
        "cap_again": "As figure {n}, for {model}.",
        "sec_conv": "Convolutions",
        "conv_intro": (
            "A convolution slides a filter (a small table of weights) over the signal or image "
            "and, at each position, sums the products of the weights with the values under them. "
            "Borders are handled by reflection, as in the notebook."
        ),
        "sec_networks": "Convolutional networks",
        "networks_intro": (
            "Networks learn their own filters. cnn has 32 filters per convolutional layer, "
            "cnn_small 8, and cnn_small_bn adds batch normalization to cnn_small; mlp is a dense "
            "network without convolutions."
        ),
        "sec_architectures": "Architectures",
        "sec_training": "Training curves",
        "sec_filters": "Learned filters",
        "sec_feature_maps": "Feature maps",
        "sec_bn": "Batch normalization",
        "sec_confusion": "Confusion matrices",
        "sec_wrong": "Most confident mistakes",
        "sec_size": "Accuracy and number of parameters",
        "sec_comparison": "Model comparison",
        "sec_claims": "The notebook's claims, checked",
        "sec_sources": "Data sources",
        "sec_provenance": "Provenance",
        "col_layer": "layer",
        "col_type": "type",
        "col_shape": "output shape",
        "col_params": "parameters",
        "total_params": "{model}: {n} parameters",
        "col_model": "model",
        "col_epochs": "epochs",
        "col_train_seconds": "training time (s)",
        "col_train_samples_per_s": "samples/s (training)",
        "col_val_accuracy": "validation accuracy",
        "col_test_accuracy": "test accuracy",
        "col_test_loss": "test loss",
        "col_inference_images_per_s": "images/s (inference)",
        "comparison_note": (
            "Validation accuracy: that of the last epoch, on the final part of the training set "
            "held out for it (preprocess.validation_split). Test: the MNIST test set, which no "
            "model sees while training. Timings depend on the machine."
        ),
        "claim": "Claim",
        "verdict": "Verdict",
        "holds": "holds",
        "partly holds": "partly holds",
        "does not hold": "does not hold",
        "not checked": "not checked",
        "part_yes": "yes",
        "part_no": "no",
        "part_none": "not checked",
        "claim_cnn_vs_mlp": "",
        "claim_batchnorm": "",
        "part_better test accuracy": "better test accuracy",
        "part_far fewer parameters": "far fewer parameters (less than half)",
        "part_higher validation accuracy": "higher validation accuracy",
        "part_higher test accuracy": "higher test accuracy",
        "part_faster early rise": "faster rise in the first epochs",
        "reason_cnn_vs_mlp": "",
        "reason_batchnorm": "",
        "reason_batchnorm_early": "",
        "reason_missing": "",
        "mnist": "MNIST",
        "demo_image": "Image of the convolution demos",
        "source": "source",
        "location": "location",
        "set_by": "set by",
        "file_sha256": "file SHA-256",
        "content_check": "content",
        "content_ok": "the SHA-256 of all four arrays match params.yaml",
        "failed_sources": "sources that failed first",
        "image_file": "file",
        "image_size": "size (pixels)",
        "fallback_warning": (
            "Warning: the notebook's image could not be fetched ({url}). The "
            "convolution figures use matplotlib's fallback image ({file}) instead, so they differ "
            "from the notebook's. To use another image, set data.image_local in params.yaml or "
            "the DEMO_IMAGE environment variable."
        ),
        "git_commit": "git commit",
        "git_dirty": "uncommitted changes",
        "dvc_exp_name": "DVC experiment",
        "python": "Python",
        "keras": "Keras",
        "mlflow_runs": "MLflow runs",
        "run_id": "run id",
        "experiment": "experiment",
        "restored": "reused",
        "restored_note": (
            "A “reused” training run belongs to an earlier pipeline execution: DVC restored the "
            "model from its cache instead of retraining. Test metrics and figures are in this "
            "execution's parent run."
        ),
        "params": "Parameters (params.yaml)",
        "true": "yes",
        "false": "no",
        "unknown": "unknown",
        "cap_01_random_walk": (
            "A random walk (cumulative sum of normal steps) and the same walk convolved with a "
            "Gaussian filter: each point becomes a weighted mean of its neighbours and the fast "
            "wiggles disappear."
        ),
        "cap_02_gaussian_1d": (
            "The taps of the 1-D Gaussian filter. They sum to 1, so the convolution is an "
            "average: it keeps the signal's level."
        ),
        "cap_03_image": "The starting image, with its three colour channels.",
        "cap_04_gaussian_2d": (
            "The 2-D Gaussian filter: the outer product of the 1-D filter with itself. It also "
            "sums to 1."
        ),
        "cap_05_blurred": (
            "The image convolved with the 2-D filter, channel by channel: each pixel is the "
            "weighted mean of its neighbourhood, and the image looks blurred."
        ),
        "cap_06_grey": (
            "The image in greyscale (mean of the three channels): the edge detector's input."
        ),
        "cap_07_gradient_filter": (
            "Horizontal difference of the Gaussian filter: negative weights (blue) on one side, "
            "positive (red) on the other, summing to 0. It responds to brightness changes from "
            "left to right, not to flat regions."
        ),
        "cap_08_edges": (
            "Response of the greyscale image to the gradient filter: vertical edges show up "
            "bright or dark depending on the direction of the change; flat regions stay mid-grey."
        ),
        "cap_history": (
            "Accuracy (solid, left axis) and loss (dashed, right axis) of {model} per epoch, on "
            "the training (blue) and validation (orange) data. When validation drifts away from "
            "training, the model starts to overfit."
        ),
        "cap_history_zoom": (
            "The accuracy curves of {model} with the vertical axis limited to 0.9–1, to show the "
            "differences of the last epochs."
        ),
        "cap_filters": (
            "The 3×3 filters learned by {model}. First row: the 8 filters of the first "
            "convolutional layer, applied to the image. Next rows: the second layer; row "
            "“channel i” holds the weights each filter (column) applies to channel i of the first "
            "layer's output. Red positive, blue negative, one colour scale per layer."
        ),
        "cap_feature_maps": (
            "The first training images and what the two convolutional layers of {model} make of "
            "them (feature maps): each filter highlights one kind of stroke. The second layer, "
            "after max-pooling, works at a lower resolution. Each map has its own colour scale "
            "(yellow: strongest response)."
        ),
        "cap_bn_comparison": (
            "Training (dashed) and validation (solid, with dots) accuracy per epoch of {plain} "
            "and {bn} (with batch normalization): the comparison the notebook announces at its "
            "end."
        ),
        "cap_confusion": (
            "Confusion matrix of {model} on the test set: each row is the true label and each "
            "column the predicted one; mistakes lie off the diagonal. The colour scale is "
            "logarithmic so the few mistakes stand out."
        ),
        "cap_wrong": (
            "The test images {model} got wrong most confidently, with the true label, the "
            "prediction and the probability the model gave it."
        ),
        "cap_accuracy_vs_params": (
            "Test accuracy of each model against its number of parameters (logarithmic "
            "horizontal axis): the higher and further left, the more accuracy per parameter."
        ),
    },
}

CSS = """
body { font-family: "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif; color: #1d1d1f;
  background: #fff; margin: 0; line-height: 1.5; }
main { max-width: 960px; margin: 0 auto; padding: 1.5rem 1.25rem 4rem; }
h1 { font-size: 2rem; margin: 0.5rem 0 0; }
.subtitle { color: #555; margin: 0.25rem 0 1.5rem; font-size: 1.1rem; }
h2 { font-size: 1.5rem; border-bottom: 2px solid #d0d7de; padding-bottom: 0.25rem;
  margin-top: 2.5rem; }
h3 { font-size: 1.2rem; margin-top: 2rem; }
nav ol { columns: 2; margin: 0.5rem 0 1rem; }
figure { margin: 1.5rem 0; break-inside: avoid; page-break-inside: avoid; }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto;
  border: 1px solid #e5e5e5; }
figcaption { font-size: 0.95rem; color: #333; margin-top: 0.5rem; }
figcaption b { color: #000; }
.tables { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr));
  gap: 0 1.5rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.75rem 0; font-size: 0.92rem; }
caption { text-align: left; font-weight: bold; padding: 0.25rem 0; }
th, td { border: 1px solid #d0d7de; padding: 0.3rem 0.55rem; vertical-align: top; }
th { background: #f3f5f7; text-align: left; font-weight: bold; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code, .mono { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.88em;
  overflow-wrap: anywhere; }
pre { background: #f6f8fa; border: 1px solid #d0d7de; padding: 0.75rem; font-size: 0.82rem;
  white-space: pre-wrap; overflow-wrap: anywhere; }
.claim { border: 1px solid #d0d7de; border-left-width: 6px; padding: 0.5rem 1rem;
  margin: 1rem 0; break-inside: avoid; }
.claim.holds { border-left-color: #1a7f37; }
.claim.partly { border-left-color: #bf8700; }
.claim.fails { border-left-color: #cf222e; }
.claim.unchecked { border-left-color: #8c959f; }
.verdict { font-weight: bold; }
.holds .verdict { color: #1a7f37; } .partly .verdict { color: #9a6700; }
.fails .verdict { color: #cf222e; }
td code { white-space: nowrap; }
details { margin: 1rem 0; } summary { cursor: pointer; }
.warning { background: #fff4e5; border: 2px solid #d97706; padding: 0.75rem 1rem;
  margin: 1rem 0; }
.note { color: #555; font-size: 0.92rem; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1rem; }
dl.kv dt { font-weight: bold; }
dl.kv dd { margin: 0; overflow-wrap: anywhere; }
@media print { main { max-width: none; } nav { display: none; } h2 { break-after: avoid; } }
"""

# The parts of the claims (stages/evaluate.py) in the order their statements name them.
PART_ORDER = (
    "better test accuracy",
    "far fewer parameters",
    "higher validation accuracy",
    "higher test accuracy",
    "faster early rise",
)

VERDICT_CLASS = {
    "holds": "holds",
    "partly holds": "partly",
    "does not hold": "fails",
    "not checked": "unchecked",
}


class ReportError(RuntimeError):
    """An input of the report stage is missing or malformed (the message says the fix)."""


@dataclass(frozen=True)
class LayerRow:
    """One line of a model summary table."""

    name: str
    type: str
    output_shape: str
    params: int


@dataclass(frozen=True)
class NetworkFigure:
    """A figure of the visualize stage, as listed in its ``index.json``."""

    file: str
    kind: str
    models: tuple[str, ...]
    png: bytes


@dataclass(frozen=True)
class ReportInputs:
    """Everything the page shows, already read from disk."""

    conv_figures: Sequence[tuple[str, bytes]]  # (file stem, PNG bytes), in CONV_FIGURES order
    network_figures: Sequence[NetworkFigure]
    summaries: Mapping[str, Sequence[LayerRow]]  # per model, in params order
    comparison: Sequence[Mapping[str, str]]  # rows of reports/comparison.csv
    claims: Sequence[Mapping[str, Any]]  # reports/evaluate/claims.json
    sources: Mapping[str, Any]  # data/raw/sources.json
    runs: Mapping[str, Mapping[str, Any]]  # reports/evaluate/runs.json
    params_text: str  # params.yaml as written
    provenance: Mapping[str, str] = field(default_factory=dict)
    # The drawing pad: the layers of drawpad.PAD_MODEL, its script and style (empty: no pad).
    pad_layers: Sequence[drawpad.PadLayer] = ()
    pad_assets: tuple[str, str] = ("", "")


# --------------------------------------------------------------------------------------
# Pure core: text and HTML
# --------------------------------------------------------------------------------------
def text(key: str, lang: str, **fields: Any) -> str:
    """The page's text for ``key`` in ``lang``; ``fields`` fill its placeholders."""
    try:
        template = TEXT[lang][key]
    except KeyError:
        raise KeyError(
            f"No report text {key!r} for language {lang!r}: add it to TEXT in stages/report.py."
        ) from None
    return template.format(**fields) if fields else template


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def thousands(n: int | float) -> str:
    """``61482`` as ``61 482``: a narrow no-break space reads the same in Spanish and English."""
    return f"{int(n):,}".replace(",", "\u202f")


def layer_rows(model: keras.Model) -> list[LayerRow]:
    """The model summary as rows: layer name, class, output shape without the batch axis,
    parameter count."""
    rows = []
    for layer in model.layers:
        shape = tuple(layer.output.shape)[1:]
        rows.append(
            LayerRow(
                name=layer.name,
                type=layer.__class__.__name__,
                output_shape=" × ".join(str(d) for d in shape),
                params=int(layer.count_params()),
            )
        )
    return rows


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _figure(number: int, png: bytes, caption: str, lang: str) -> str:
    label = f"{text('figure', lang)} {number}"
    return (
        f'<figure><img src="{data_uri(png)}" alt="{esc(label)}">'
        f"<figcaption><b>{esc(label)}.</b> {esc(caption)}</figcaption></figure>"
    )


def _caption(fig: NetworkFigure, lang: str) -> str:
    models = fig.models or ("",)
    key = f"cap_{fig.kind}"
    if key not in TEXT[lang]:
        return fig.file
    return text(key, lang, model=", ".join(models), plain=models[0], bn=models[-1])


def _summary_table(model: str, rows: Sequence[LayerRow], lang: str) -> str:
    total = sum(r.params for r in rows)
    head = "".join(
        f"<th>{esc(text(k, lang))}</th>"
        for k in ("col_layer", "col_type", "col_shape", "col_params")
    )
    body = "".join(
        f"<tr><td><code>{esc(r.name)}</code></td><td>{esc(r.type)}</td>"
        f'<td class="num">{esc(r.output_shape)}</td><td class="num">{thousands(r.params)}</td></tr>'
        for r in rows
    )
    cap = esc(text("total_params", lang, model=model, n=thousands(total)))
    return (
        f'<div class="scroll"><table><caption>{cap}</caption><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


# How each comparison.csv column is shown: None = text, else a format for float(value).
_COLUMN_FORMATS: dict[str, str | None] = {
    "model": None,
    "params": "int",
    "epochs": "int",
    "train_seconds": "{:.1f}",
    "train_samples_per_s": "int",
    "val_accuracy": "{:.4f}",
    "test_accuracy": "{:.4f}",
    "test_loss": "{:.4f}",
    "inference_images_per_s": "int",
}


def _cell(column: str, value: str) -> str:
    fmt = _COLUMN_FORMATS.get(column)
    if fmt is None:
        return f"<td>{esc(value)}</td>"
    try:
        number = float(value)
    except ValueError:
        return f"<td>{esc(value)}</td>"
    shown = thousands(round(number)) if fmt == "int" else fmt.format(number)
    return f'<td class="num">{esc(shown)}</td>'


def _column_title(column: str, lang: str) -> str:
    key = "col_params" if column == "params" else f"col_{column}"
    return text(key, lang) if key in TEXT[lang] else column


def comparison_table(rows: Sequence[Mapping[str, str]], lang: str) -> str:
    """The comparison table with one column per model and one row per measure: nine measures
    side by side would not fit a page, four or five models do."""
    if not rows:
        return ""
    measures = [c for c in rows[0] if c != "model"]
    head = f"<th>{esc(text('col_model', lang))}</th>" + "".join(
        f"<th><code>{esc(row.get('model', ''))}</code></th>" for row in rows
    )
    body = "".join(
        f"<tr><th>{esc(_column_title(m, lang))}</th>"
        + "".join(_cell(m, row.get(m, "")) for row in rows)
        + "</tr>"
        for m in measures
    )
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
        f'</table></div><p class="note">{esc(text("comparison_note", lang))}</p>'
    )


def claim_reason(claim: Mapping[str, Any], lang: str) -> str:
    """The numbers behind a verdict in ``lang``: the evaluate stage's English sentence, or for
    Spanish a sentence rebuilt from the claim's evidence (the English one if that fails)."""
    reason = str(claim.get("reason", ""))
    if lang == "en":
        return reason
    ev = dict(claim.get("evidence") or {})
    cid = claim.get("id")
    missing = re.match(r"Model\(s\) (.+) not in params\.yaml", reason)
    try:
        if missing and not ev:
            return TEXT[lang]["reason_missing"].format(models=missing.group(1))
        if cid == "cnn_vs_mlp":
            values = {
                **ev,
                "diff": 100 * (ev["cnn_test_accuracy"] - ev["mlp_test_accuracy"]),
                "percent": 100 * ev["params_ratio"],
                "cnn_params": thousands(ev["cnn_params"]),
                "mlp_params": thousands(ev["mlp_params"]),
            }
            return TEXT[lang]["reason_cnn_vs_mlp"].format(**values)
        if cid == "batchnorm":
            out = TEXT[lang]["reason_batchnorm"].format(**ev)
            if "early_epochs" in ev:
                early = {**ev, "early_epochs": int(ev["early_epochs"])}
                out += TEXT[lang]["reason_batchnorm_early"].format(**early)
            return out
    except (KeyError, TypeError, ValueError):
        log.warning("Claim %s: unexpected evidence %s; its reason stays in English.", cid, ev)
    return reason


def _claim_block(claim: Mapping[str, Any], lang: str) -> str:
    verdict = str(claim.get("verdict", "not checked"))
    statement_key = f"claim_{claim.get('id')}"
    statement = str(claim.get("statement", ""))
    if TEXT[lang].get(statement_key):
        statement = text(statement_key, lang)
    shown_verdict = text(verdict, lang) if verdict in VERDICT_CLASS else verdict
    parts = claim.get("parts") or {}
    # claims.json is written with sorted keys: show the parts in the statement's order.
    order = {p: i for i, p in enumerate(PART_ORDER)}
    items = []
    for part, value in sorted(parts.items(), key=lambda kv: order.get(kv[0], len(order))):
        name = text(f"part_{part}", lang) if f"part_{part}" in TEXT[lang] else part
        answer = {True: "part_yes", False: "part_no"}.get(value, "part_none")
        items.append(f"<li>{esc(name)}: <b>{esc(text(answer, lang))}</b></li>")
    parts_html = f"<ul>{''.join(items)}</ul>" if items else ""
    css = VERDICT_CLASS.get(verdict, "unchecked")
    return (
        f'<div class="claim {css}"><p><b>{esc(text("claim", lang))}:</b> {esc(statement)}</p>'
        f'<p><b>{esc(text("verdict", lang))}:</b> <span class="verdict">{esc(shown_verdict)}'
        f"</span></p>{parts_html}<p>{esc(claim_reason(claim, lang))}</p></div>"
    )


def _kv(pairs: Sequence[tuple[str, str]]) -> str:
    items = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in pairs)
    return f'<dl class="kv">{items}</dl>'


def _failed_list(failed: Sequence[Mapping[str, Any]]) -> str:
    items = "".join(
        f"<li><code>{esc(f.get('source', ''))}</code> "
        f'(<span class="mono">{esc(f.get("location") or f.get("url") or "")}</span>): '
        f"{esc(f.get('reason', ''))}</li>"
        for f in failed
    )
    return f"<ul>{items}</ul>"


def sources_section(sources: Mapping[str, Any], lang: str) -> str:
    """Where MNIST and the demo image came from; a warning box if the image is the fallback."""
    out = []
    image = sources.get("image") or {}
    if image.get("fallback"):
        first = (image.get("failed") or [{}])[0]
        out.append(
            '<div class="warning" role="alert">'
            + esc(
                text(
                    "fallback_warning",
                    lang,
                    url=first.get("url", ""),
                    file=image.get("url", image.get("file", "")),
                )
            )
            + "</div>"
        )
    mnist = sources.get("mnist") or {}
    pairs = [
        (text("source", lang), f"<code>{esc(mnist.get('source', ''))}</code>"),
        (text("location", lang), f'<span class="mono">{esc(mnist.get("location", ""))}</span>'),
    ]
    if mnist.get("set_by"):
        pairs.append((text("set_by", lang), f"<code>{esc(mnist['set_by'])}</code>"))
    if mnist.get("file_sha256"):
        pairs.append(
            (text("file_sha256", lang), f'<span class="mono">{esc(mnist["file_sha256"])}</span>')
        )
    if mnist.get("content_sha256"):
        pairs.append((text("content_check", lang), esc(text("content_ok", lang))))
    if mnist.get("failed"):
        pairs.append((text("failed_sources", lang), _failed_list(mnist["failed"])))
    out.append(f"<h3>{esc(text('mnist', lang))}</h3>{_kv(pairs)}")
    pairs = [
        (text("source", lang), f"<code>{esc(image.get('source', ''))}</code>"),
        (text("location", lang), f'<span class="mono">{esc(image.get("url", ""))}</span>'),
        (text("image_file", lang), f"<code>{esc(image.get('file', ''))}</code>"),
    ]
    if image.get("size"):
        pairs.append((text("image_size", lang), esc(" × ".join(str(v) for v in image["size"]))))
    if image.get("sha256"):
        pairs.append(
            (text("file_sha256", lang), f'<span class="mono">{esc(image["sha256"])}</span>')
        )
    if image.get("failed"):
        pairs.append((text("failed_sources", lang), _failed_list(image["failed"])))
    out.append(f"<h3>{esc(text('demo_image', lang))}</h3>{_kv(pairs)}")
    return "".join(out)


def _flag(value: str, lang: str) -> str:
    return text(value, lang) if value in ("true", "false", "unknown") else value


def provenance_section(inputs: ReportInputs, lang: str) -> str:
    pairs = [
        (text(k, lang), f'<span class="mono">{esc(_flag(inputs.provenance[k], lang))}</span>')
        for k in PROVENANCE_KEYS
        if inputs.provenance.get(k)
    ]
    head = "".join(
        f"<th>{esc(text(k, lang))}</th>" for k in ("col_model", "run_id", "experiment", "restored")
    )
    rows = "".join(
        f'<tr><td><code>{esc(m)}</code></td><td class="mono">{esc(r.get("run_id", ""))}</td>'
        f"<td>{esc(r.get('experiment', ''))}</td>"
        f"<td>{esc(text('true' if r.get('restored') else 'false', lang))}</td></tr>"
        for m, r in inputs.runs.items()
    )
    runs = (
        f'<h3>{esc(text("mlflow_runs", lang))}</h3><div class="scroll"><table><thead><tr>{head}'
        f"</tr></thead><tbody>{rows}</tbody></table></div>"
        f'<p class="note">{esc(text("restored_note", lang))}</p>'
    )
    params = (
        f"<details><summary><b>{esc(text('params', lang))}</b></summary>"
        f"<pre>{esc(inputs.params_text)}</pre></details>"
    )
    return _kv(pairs) + runs + params


def pad_section(inputs: ReportInputs, lang: str) -> str:
    """The interactive drawing pad (hidden without JavaScript), or nothing without a model."""
    if not inputs.pad_layers:
        return ""
    return drawpad.section(inputs.pad_layers, lang, inputs.pad_assets[0])


def build_html(inputs: ReportInputs, lang: str) -> str:
    """The whole page, self-contained."""
    if lang not in TEXT:
        raise ReportError(f"report.lang must be one of {sorted(TEXT)}, got {lang!r}.")
    number = 0
    sections: list[tuple[str, str, str]] = []  # (anchor, title, body)

    body = [f"<p>{esc(text('conv_intro', lang))}</p>"]
    for stem, png in inputs.conv_figures:
        number += 1
        body.append(_figure(number, png, text(f"cap_{stem}", lang), lang))
    sections.append(("conv", text("sec_conv", lang), "".join(body)))

    tables = "".join(_summary_table(m, rows, lang) for m, rows in inputs.summaries.items())
    net = [
        f"<p>{esc(text('networks_intro', lang))}</p>",
        f'<h3 id="architectures">{esc(text("sec_architectures", lang))}</h3>',
        f'<div class="tables">{tables}</div>',
    ]
    first_of_kind: dict[str, int] = {}

    def network_figure(fig: NetworkFigure) -> str:
        # The first figure of a kind explains it; the next ones (other models) refer back.
        nonlocal number
        number += 1
        if fig.kind in first_of_kind:
            models = ", ".join(fig.models)
            caption = text("cap_again", lang, n=first_of_kind[fig.kind], model=models)
        else:
            first_of_kind[fig.kind] = number
            caption = _caption(fig, lang)
        return _figure(number, fig.png, caption, lang)

    for key, kinds in NETWORK_SECTIONS:
        figs = [f for f in inputs.network_figures if f.kind in kinds]
        if not figs:
            continue
        net.append(f'<h3 id="{key}">{esc(text(key, lang))}</h3>')
        net += [network_figure(fig) for fig in figs]
    known = {k for _, kinds in NETWORK_SECTIONS for k in kinds}
    net += [network_figure(fig) for fig in inputs.network_figures if fig.kind not in known]
    sections.append(("networks", text("sec_networks", lang), "".join(net)))

    sections.append(
        ("comparison", text("sec_comparison", lang), comparison_table(inputs.comparison, lang))
    )
    sections.append(
        ("claims", text("sec_claims", lang), "".join(_claim_block(c, lang) for c in inputs.claims))
    )
    sections.append(("sources", text("sec_sources", lang), sources_section(inputs.sources, lang)))
    sections.append(("provenance", text("sec_provenance", lang), provenance_section(inputs, lang)))

    toc = "".join(f'<li><a href="#{a}">{esc(t)}</a></li>' for a, t, _ in sections)
    content = "".join(
        f'<section id="{a}"><h2>{esc(t)}</h2>{b}</section>'
        + (pad_section(inputs, lang) if a == "networks" else "")
        for a, t, b in sections
    )
    title = esc(text("title", lang))
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n<style>{CSS}{inputs.pad_assets[1]}</style>\n</head>\n<body>\n<main>\n"
        f'<h1>{title}</h1><p class="subtitle">{esc(text("subtitle", lang))}</p>'
        f"<p>{esc(text('intro', lang))}</p>"
        f"<nav><b>{esc(text('contents', lang))}</b><ol>{toc}</ol></nav>\n"
        f"{content}\n</main>\n</body>\n</html>\n"
    )


# --------------------------------------------------------------------------------------
# Edge: reading inputs
# --------------------------------------------------------------------------------------
def _need(path: Path, fix: str) -> Path:
    if not path.exists():
        raise ReportError(f"{path} not found: run `{fix}` first.")
    return path


def read_conv_figures(directory: Path = config.CONV_DIR) -> list[tuple[str, bytes]]:
    missing = [s for s in CONV_FIGURES if not (directory / f"{s}.png").exists()]
    if missing:
        raise ReportError(
            f"{directory} lacks {', '.join(f'{s}.png' for s in missing)}: "
            "run `dvc repro convolutions` first."
        )
    return [(s, (directory / f"{s}.png").read_bytes()) for s in CONV_FIGURES]


def read_network_figures(directory: Path = config.NETWORK_DIR) -> list[NetworkFigure]:
    index = files.read_json(_need(directory / config.FIGURES_INDEX, "dvc repro visualize"))
    out = []
    for entry in index.get("figures", []):
        path = directory / entry["file"]
        if not path.exists():
            raise ReportError(
                f"{path} is listed in {config.FIGURES_INDEX} but missing: rerun visualize."
            )
        out.append(
            NetworkFigure(
                entry["file"], entry["kind"], tuple(entry.get("models", ())), path.read_bytes()
            )
        )
    return out


def read_comparison(path: Path = config.COMPARISON_CSV) -> list[dict[str, str]]:
    with open(_need(path, "dvc repro evaluate"), newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def model_summaries(names: Sequence[str]) -> dict[str, list[LayerRow]]:
    """Each saved model's layer table (loads the Keras files)."""
    import keras

    out = {}
    for name in names:
        path = _need(config.model_path(name), f"dvc repro train@{name}")
        out[name] = layer_rows(keras.saving.load_model(path, compile=False))
    return out


def read_pad(names: Sequence[str]) -> tuple[list[drawpad.PadLayer], tuple[str, str]]:
    """The drawing pad's model layers and assets; no pad when its model is not in params."""
    if drawpad.PAD_MODEL not in names:
        return [], ("", "")
    path = _need(config.model_path(drawpad.PAD_MODEL), f"dvc repro train@{drawpad.PAD_MODEL}")
    return drawpad.read_keras_file(path), drawpad.read_assets()


def read_inputs(names: Sequence[str], params_path: Path = Path(config.PARAMS_FILE)) -> ReportInputs:
    """Read every input of the page (the Keras models included; the drawing pad's last)."""
    inputs = ReportInputs(
        conv_figures=read_conv_figures(),
        network_figures=read_network_figures(),
        summaries=model_summaries(names),
        comparison=read_comparison(),
        claims=files.read_json(_need(config.EVAL_CLAIMS, "dvc repro evaluate")),
        sources=files.read_json(_need(config.RAW_SOURCES, "dvc repro download")),
        runs=files.read_json(_need(config.EVAL_RUNS, "dvc repro evaluate")),
        params_text=params_path.read_text(encoding="utf-8"),
        provenance={**tracking.provenance_tags(), "keras": importlib.metadata.version("keras")},
    )
    pad_layers, pad_assets = read_pad(names)
    return replace(inputs, pad_layers=pad_layers, pad_assets=pad_assets)


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with cli.stage("report"):
        params = config.load_params()
        try:
            inputs = read_inputs(list(params.models))
            page = build_html(inputs, params.report.lang)
        except (ReportError, drawpad.PadError, OSError, ValueError, KeyError) as exc:
            raise cli.StageError(str(exc)) from exc
        files.write_text(config.REPORT_HTML, page)
    n_figures = len(inputs.conv_figures) + len(inputs.network_figures)
    log.info(
        "%s: %d figures, %d models, %.1f MB (%s)",
        config.REPORT_HTML,
        n_figures,
        len(inputs.summaries),
        len(page.encode("utf-8")) / 1e6,
        params.report.lang,
    )


if __name__ == "__main__":
    main()
