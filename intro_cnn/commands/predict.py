"""Classify your own images of handwritten digits with a trained network.

    python -m intro_cnn.commands.predict photo.jpg scan.png            # top 3 digits per image
    python -m intro_cnn.commands.predict --json digit.png              # machine-readable
    python -m intro_cnn.commands.predict --model cnn_small digit.png   # another model
    python -m intro_cnn.commands.predict --explain maps.png digit.png  # what conv1 sees

Each image goes through the MNIST recipe of :mod:`intro_cnn.data.digits` (greyscale, invert a light
background, crop to the ink, longest side 20 px, centre of mass at the centre of 28×28).
The model is, in order of preference: the registry's ``champion`` of ``intro-cnn-<name>``
(when an MLflow store with that alias exists), else ``models/<name>.keras``; ``--model`` may
also name a ``.keras`` file. An image that cannot be read is named on stderr and the others
are still classified; the exit status is then 1. Not a DVC stage: it reads models, writes only
what it is asked to.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from intro_cnn import config, tracking
from intro_cnn.data import digits
from intro_cnn.runtime import cli, errors, tf_import
from intro_cnn.tracking import mlflow_store

log = logging.getLogger(__name__)

DEFAULT_MODEL = "cnn"
TOP_K = 3
CHAMPION_ALIAS = "champion"


def registered_name(model: str) -> str:
    """The MLflow registry name of a model of params.yaml (``intro-cnn-<name>``)."""
    return f"intro-cnn-{model}"


class PredictError(errors.StageError):
    """A model or image cannot be used (the message names it and the fix)."""


@dataclass(frozen=True)
class Prediction:
    image: str
    digit: int
    probabilities: list[float]  # 10 floats as the network gave them, summing to 1

    def top(self, k: int = TOP_K) -> list[tuple[int, float]]:
        """The ``k`` likeliest digits, ranked on the exact probabilities (ties: lower digit)."""
        order = np.argsort(-np.asarray(self.probabilities), kind="stable")[:k]
        return [(int(d), float(self.probabilities[d])) for d in order]

    def as_json(self) -> dict[str, Any]:
        return {"image": self.image, "digit": self.digit, "probabilities": self.probabilities}


# --------------------------------------------------------------------------------------
# Pure core
# --------------------------------------------------------------------------------------
def classify(model: Any, images: np.ndarray) -> np.ndarray:
    """Probabilities (N, 10) for preprocessed (N, 28, 28) images; no progress bar."""
    x = digits.as_tensor(images)
    return np.asarray(model(x, training=False), dtype=np.float64)


def predictions(names: Sequence[str], probabilities: np.ndarray) -> list[Prediction]:
    return [
        Prediction(name, int(np.argmax(p)), [float(v) for v in p])
        for name, p in zip(names, probabilities, strict=True)
    ]


def unreadable_summary(n_bad: int, n_all: int) -> str:
    """The last line when some images could not be classified."""
    rest = "the others are above" if n_bad < n_all else "nothing was classified"
    return f"{n_bad} of {n_all} images could not be classified ({rest}); each is named above."


def format_text(preds: Sequence[Prediction], model_label: str) -> str:
    lines = [f"model: {model_label}"]
    for pred in preds:
        top = ", ".join(f"{d} ({p:.1%})" for d, p in pred.top())
        lines.append(f"{pred.image}: {pred.digit}   top {TOP_K}: {top}")
    return "\n".join(lines)


def first_conv_maps(model: Any, image: np.ndarray) -> np.ndarray:
    """The first Conv2D layer's output (h, w, filters) for one preprocessed image."""
    import keras

    from intro_cnn.models import conv_layers

    convs = conv_layers(model)
    if not convs:
        raise PredictError(f"model {model.name!r} has no convolution to explain; use a CNN.")
    sub = keras.Model(model.input, convs[0].output)
    return np.asarray(sub(digits.as_tensor(image[np.newaxis]), training=False)[0], np.float32)


def explain_figure(image: np.ndarray, maps: np.ndarray, pred: Prediction) -> Any:
    """The preprocessed input beside the first convolution's feature maps."""
    from intro_cnn.reporting import plotting

    n = maps.shape[-1]
    cols = 8
    rows = -(-n // cols)
    fig = plotting.new_figure((2.5 + cols * 0.9, max(2.6, rows * 0.95)))
    left, right = fig.subfigures(1, 2, width_ratios=[2.5, cols * 0.9])
    ax = left.subplots()
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"28×28 → {pred.digit} ({max(pred.probabilities):.0%})")
    ax.set_axis_off()
    axes = right.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < n:
            ax.imshow(maps[..., i], cmap="viridis")
            ax.set_title(str(i), fontsize=8)
    right.suptitle(f"conv1: {n} feature maps")
    return fig


# --------------------------------------------------------------------------------------
# Edge: models and files
# --------------------------------------------------------------------------------------
def champion_uri(model: str) -> str:
    return f"models:/{registered_name(model)}@{CHAMPION_ALIAS}"


def _store_exists(uri: str) -> bool:
    """Whether a tracking store is there to ask (never create an empty mlflow.db)."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :]).exists()
    return True


def load_champion(model: str) -> Any | None:
    """The registry's champion of ``model`` as a Keras model, or None when there is none."""
    uri = mlflow_store.tracking_uri()
    if not _store_exists(uri):
        return None
    import mlflow
    from mlflow.exceptions import MlflowException

    tracking.quiet_mlflow()
    mlflow.set_tracking_uri(uri)
    try:
        mlflow.MlflowClient(uri).get_model_version_by_alias(registered_name(model), CHAMPION_ALIAS)
    except MlflowException:
        return None
    from intro_cnn.tracking import serving

    return serving.load_keras(champion_uri(model))


def load_model(name: str) -> tuple[Any, str]:
    """The Keras model to predict with, and a label saying where it came from."""
    with tf_import.importing_tensorflow():
        import keras

    path = Path(name)
    if path.suffix == ".keras":
        if not path.exists():
            raise PredictError(f"{path}: no such model file. Check the path.")
        return keras.saving.load_model(path, compile=False), str(path)
    champion = load_champion(name)
    if champion is not None:
        return champion, champion_uri(name)
    path = config.model_path(name)
    if not path.exists():
        raise PredictError(
            f"no model {name!r}: neither {champion_uri(name)} nor {path} exists. "
            f"Train it with `dvc repro train@{name}` (or `make repro`)."
        )
    return keras.saving.load_model(path, compile=False), str(path)


def prepare_all(images: Sequence[Path]) -> tuple[list[tuple[Path, digits.Prepared]], list[str]]:
    """Every image through the recipe: those that passed, and one message per image that did
    not (each names its file and the fix)."""
    good, problems = [], []
    for path in images:
        try:
            good.append((path, digits.prepare_file(path)))
        except digits.DigitError as exc:
            problems.append(str(exc))
    return good, problems


def run(
    images: Sequence[Path], model_name: str, explain: Path | None = None
) -> tuple[list[Prediction], str, list[str]]:
    """Preprocess every image, classify those that passed, write the explanation figure of the
    first of them; the predictions, the model's label and one message per image that failed.
    With no readable image the model is not loaded (its label is empty)."""
    good, problems = prepare_all(images)
    if not good:
        return [], "", problems
    model, label = load_model(model_name)
    stack = np.stack([prepared.image for _, prepared in good])
    preds = predictions([str(path) for path, _ in good], classify(model, stack))
    if explain is not None:
        from intro_cnn.reporting import plotting

        fig = explain_figure(stack[0], first_conv_maps(model, stack[0]), preds[0])
        plotting.save_figure(fig, explain, dpi=100)
    return preds, label, problems


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Classify images of handwritten digits (any size, any format Pillow reads)."
    )
    parser.add_argument("images", nargs="+", type=Path, help="image files, one digit each")
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="a model of params.yaml (default cnn: its registry champion, else "
        "models/cnn.keras) or a .keras file",
    )
    parser.add_argument(
        "--json", action="store_true", help="one JSON object per image, one per line"
    )
    parser.add_argument(
        "--explain",
        type=Path,
        metavar="OUT.png",
        help="write the first readable image's 28×28 input and first-convolution feature maps",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        preds, label, problems = run(args.images, args.model, args.explain)
    except PredictError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    if preds and args.json:
        print("\n".join(json.dumps(p.as_json()) for p in preds))
    elif preds:
        print(format_text(preds, label))
    if preds and args.explain is not None:
        print(f"explanation of {preds[0].image}: {args.explain}", file=sys.stderr)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        print(f"error: {unreadable_summary(len(problems), len(args.images))}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    cli.run_main(main)
