"""The model as MLflow serves it: a pyfunc wrapper that checks its input instead of guessing.

A bare Keras flavour expects (N, 28, 28, 1) floats in [0, 1] and silently accepts raw 0–255
pixels, answering with saturated nonsense. :class:`DigitClassifier` takes

- ``params={"pixels": "uint8"}`` (the default): raw images, whole numbers 0–255, shape
  (N, H, W). With the preprocessing bundled (``preprocess=True``, the default) any size and
  either polarity (dark ink on light paper too): each image goes through the MNIST recipe of
  :mod:`intro_cnn.data.digits`, as ``python -m intro_cnn.commands.predict`` does. Without it, 28×28
  MNIST-style images (light ink on black), divided by 255;
- ``params={"pixels": "unit"}``: the normalised tensor, floats in [0, 1], (N, 28, 28).

Both arrive as one (N, H, W) array of at most :data:`MAX_SIDE` pixels a side and
:data:`MAX_PIXELS` in all; anything out of range, non-finite, mis-shaped, too large or of the
wrong scale is refused with an HTTP 400 whose message is the reason and what to send instead,
and nothing else. The signature declares the output and the ``pixels`` param, not the input:
MLflow's own schema check would answer wrong shapes with its generic message first. The
answer is (N, 10) probabilities.

:func:`log_model` is what the train stage calls instead of ``mlflow.keras.log_model``.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from intro_cnn.data import digits

PIXELS_PARAM = "pixels"
RAW, UNIT = "uint8", "unit"
PIXEL_SCALES = (RAW, UNIT)
KERAS_ARTIFACT = "keras_model"
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # logged with the model: it imports this module


# The largest input served: a side of MAX_SIDE pixels per image (a photo scaled down; the recipe
# brings every digit to 20 pixels anyway), MAX_PIXELS pixels per request (16 images of that
# size, or 21,000 MNIST digits). Checked once MLflow has parsed the request's JSON.
MAX_SIDE = 1024
MAX_PIXELS = 16 * MAX_SIDE * MAX_SIDE


class InputError(ValueError):
    """The request's input is not something the model accepts (the message says the fix)."""


def _check_shape(shape: tuple[int, ...]) -> None:
    """Refuse anything but a non-empty batch of greyscale images within the size limits, saying
    what to send instead."""
    expected = "expected a batch of greyscale images, shape (N, H, W)"
    if shape == (0,) or (len(shape) == 3 and shape[0] == 0):
        raise InputError(f"{expected}, got an empty batch: send at least one image.")
    if len(shape) == 2:
        raise InputError(
            f"{expected}, got one image of shape {shape} without its batch axis: send it inside "
            f"a list, [image], for shape (1, {shape[0]}, {shape[1]})."
        )
    if len(shape) == 4 and shape[-1] == 1:
        raise InputError(
            f"{expected}, got {shape} with a channel axis: drop it (shape {shape[:3]}); for the "
            f'normalised tensor send params {{"{PIXELS_PARAM}": "{UNIT}"}}.'
        )
    if len(shape) == 4 and shape[-1] in (3, 4):
        raise InputError(
            f"{expected}, got {shape}, colour images: convert them to greyscale first."
        )
    if len(shape) != 3:
        raise InputError(
            f"{expected}, got {len(shape)} axes {shape}: send a list of images, each a list of "
            "rows of pixel values."
        )
    if min(shape[1:]) < 2:
        raise InputError(f"{expected}, got images of {shape[1]}×{shape[2]}: send real images.")
    if max(shape[1:]) > MAX_SIDE:
        raise InputError(
            f"the images are {shape[1]}×{shape[2]}, larger than the {MAX_SIDE}-pixel side "
            f"served: scale them down so that neither side exceeds {MAX_SIDE} (the recipe "
            "brings every digit to 20 pixels), or classify the files with "
            "`python -m intro_cnn.commands.predict`."
        )
    if shape[0] * shape[1] * shape[2] > MAX_PIXELS:
        raise InputError(
            f"the request holds {shape[0]} images of {shape[1]}×{shape[2]}, more than the "
            f"{MAX_PIXELS:,} pixels served at once: send them in smaller batches."
        )


def check_input(values: Any, pixels: str = RAW, preprocess: bool = True) -> np.ndarray:
    """The network's (N, 28, 28, 1) float32 input from a request's array, or InputError."""
    if pixels not in PIXEL_SCALES:
        raise InputError(
            f"params.{PIXELS_PARAM} must be one of {list(PIXEL_SCALES)}, got {pixels!r}: "
            f'"{RAW}" for raw 0-255 images, "{UNIT}" for the normalised [0, 1] tensor.'
        )
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(
            "the input is not a numeric array of images (a ragged list of rows?): send "
            "(N, H, W) numbers."
        ) from None
    _check_shape(x.shape)
    if not np.isfinite(x).all():
        raise InputError("the input has NaN or infinite values: send finite pixel values.")
    lo, hi = float(x.min()), float(x.max())
    if pixels == UNIT:
        if lo < 0.0 or hi > 1.0:
            hint = (
                f' These look like raw 0-255 pixels: send params {{"{PIXELS_PARAM}": "{RAW}"}}'
                " or divide by 255."
                if hi > 1.0
                else ""
            )
            raise InputError(
                f'with {PIXELS_PARAM}="{UNIT}" values must lie in [0, 1], got [{lo:g}, {hi:g}].'
                + hint
            )
        if x.shape[1:] != (digits.SIZE, digits.SIZE):
            raise InputError(
                f"the normalised tensor must be {digits.SIZE}×{digits.SIZE}, got "
                f'{x.shape[1]}×{x.shape[2]}: send raw images ({PIXELS_PARAM}="{RAW}") to have '
                "them preprocessed."
            )
        return digits.as_tensor(x)
    if lo < 0.0 or hi > 255.0 or not np.array_equal(x, np.round(x)):
        hint = (
            f' For the normalised [0, 1] tensor send params {{"{PIXELS_PARAM}": "{UNIT}"}}.'
            if hi <= 1.0
            else ""
        )
        raise InputError(
            f'with {PIXELS_PARAM}="{RAW}" values must be whole numbers 0-255, got '
            f"[{lo:g}, {hi:g}]{'' if np.array_equal(x, np.round(x)) else ' with fractions'}." + hint
        )
    if not preprocess:
        if x.shape[1:] != (digits.SIZE, digits.SIZE):
            raise InputError(
                f"this model takes {digits.SIZE}×{digits.SIZE} images, got "
                f"{x.shape[1]}×{x.shape[2]}: resize them, or log the model with "
                "preprocess=True to bundle the MNIST recipe."
            )
        return digits.as_tensor(x / 255.0)
    prepared = []
    for i, image in enumerate(x):
        try:
            prepared.append(digits.prepare(image / 255.0).image)
        except digits.DigitError as exc:
            raise InputError(f"image {i}: {exc}") from None
    return digits.as_tensor(np.stack(prepared))


def raw_images(tensor: np.ndarray) -> np.ndarray:
    """The network's (N, 28, 28, 1) [0, 1] input as raw 0-255 images (an input example)."""
    return np.round(np.asarray(tensor, dtype=np.float32)[..., 0] * 255.0)


def signature() -> Any:
    """What the served model declares: the ``pixels`` param and its (N, 10) answer (its input
    is checked by the wrapper instead, see the module's docstring)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ParamSchema, ParamSpec, Schema, TensorSpec

    return ModelSignature(
        inputs=None,
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 10), name="probabilities")]),
        params=ParamSchema([ParamSpec(PIXELS_PARAM, "string", RAW)]),
    )


def _refusal_class() -> type:
    """An MlflowException (HTTP 400) whose message stays as raised.

    MLflow's scoring server rewrites every prediction error's message to ``Failed to predict
    data '<the whole input>'. Error: ...``: 2-27 KB of pixels before the reason. This exception
    ignores that rewrite, so the client reads the reason and the fix alone."""
    from mlflow.exceptions import MlflowException

    class InputRefused(MlflowException):
        @property
        def message(self) -> str:
            return self._message

        @message.setter
        def message(self, value: str) -> None:
            if not hasattr(self, "_message"):  # set once, by MlflowException.__init__
                self._message = value

    return InputRefused


def _python_model_class() -> type:
    import mlflow.pyfunc

    class DigitClassifier(mlflow.pyfunc.PythonModel):
        """A Keras digit classifier behind :func:`check_input`."""

        def __init__(self, preprocess: bool = True) -> None:
            self.preprocess = preprocess
            self.model: Any = None

        def load_context(self, context: Any) -> None:
            import keras

            self.model = keras.saving.load_model(context.artifacts[KERAS_ARTIFACT], compile=False)

        # No type hints here: MLflow would try to derive a signature from them.
        def predict(self, context, model_input, params=None):
            from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

            pixels = (params or {}).get(PIXELS_PARAM, RAW)
            if isinstance(model_input, dict):  # a named tensor arrives as {"images": array}
                model_input = next(iter(model_input.values()))
            try:
                x = check_input(model_input, pixels, self.preprocess)
            except InputError as exc:
                refused = _refusal_class()
                raise refused(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
            return np.asarray(self.model(x, training=False), dtype=np.float32)

    return DigitClassifier


# What MLflow says on every log_model of this wrapper, by design here, each line hundreds of
# characters long: the wrapper is pickled on purpose (it holds nothing but a flag), and predict
# has no type hints so that MLflow keeps the signature given below. MLflow raises the type-hint
# warning under its own warning filter ("once"), so it is dropped where it would be shown.
_LOG_MODEL_NOTICES = (
    "Passing a Python object as `python_model`",
    "Add type hints to the `predict` method",
)


def _is_notice(message: object) -> bool:
    return any(notice in str(message) for notice in _LOG_MODEL_NOTICES)


class _DropNotices(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _is_notice(record.getMessage())


@contextlib.contextmanager
def _log_model_notices_dropped() -> Iterator[None]:
    pyfunc_log = logging.getLogger("mlflow.pyfunc")
    drop = _DropNotices()
    pyfunc_log.addFilter(drop)
    try:
        with warnings.catch_warnings():  # restores showwarning on exit
            show = warnings.showwarning

            def showwarning(message: Any, *args: Any, **kwargs: Any) -> None:
                if not _is_notice(message):
                    show(message, *args, **kwargs)

            warnings.showwarning = showwarning
            yield
    finally:
        pyfunc_log.removeFilter(drop)


# What the logged model needs to be served (the wrapper's imports and Keras' backend), pinned
# to the versions that trained it. TensorFlow is whichever distribution is installed.
SERVED_DISTRIBUTIONS = ("mlflow", "cloudpickle", "keras", "numpy", "pillow")
TENSORFLOW_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu")


def pip_requirements() -> list[str]:
    """The logged model's pip requirements, stated rather than inferred: MLflow's inference
    imports the model in a child process at every training, and misses Keras and TensorFlow,
    which a served model's environment needs."""
    import importlib.metadata

    pins = []
    for dist in (*SERVED_DISTRIBUTIONS, *TENSORFLOW_DISTRIBUTIONS):
        try:
            pins.append(f"{dist}=={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            if dist not in TENSORFLOW_DISTRIBUTIONS:
                raise
    if not any(pin.startswith(TENSORFLOW_DISTRIBUTIONS) for pin in pins):
        raise RuntimeError(f"None of {TENSORFLOW_DISTRIBUTIONS} is installed: run `make setup`.")
    return pins


def log_model(
    keras_model_or_path: Any,
    name: str = "model",
    registered_model_name: str | None = None,
    preprocess: bool = True,
    input_example: np.ndarray | None = None,
) -> Any:
    """Log a Keras model (or a .keras file) into the active MLflow run, wrapped so that it
    checks its input; register it under ``registered_model_name`` when given. Returns MLflow's
    ModelInfo."""
    import mlflow.pyfunc

    with tempfile.TemporaryDirectory() as tmp:
        if isinstance(keras_model_or_path, str | Path):
            path = str(keras_model_or_path)
        else:
            path = str(Path(tmp) / "model.keras")
            keras_model_or_path.save(path)
        with _log_model_notices_dropped():
            return mlflow.pyfunc.log_model(
                name=name,
                python_model=_python_model_class()(preprocess),
                artifacts={KERAS_ARTIFACT: path},
                code_paths=[str(PACKAGE_DIR)],
                pip_requirements=pip_requirements(),
                signature=signature(),
                input_example=input_example,
                registered_model_name=registered_model_name,
            )


def load_keras(uri: str) -> Any:
    """The Keras model inside a logged model: this wrapper's, or a plain Keras flavour's."""
    import mlflow.pyfunc

    loaded = mlflow.pyfunc.load_model(uri)
    try:
        inner = loaded.unwrap_python_model()
    except Exception:  # not a PythonModel: a plain Keras flavour
        import mlflow.keras

        return mlflow.keras.load_model(uri)
    return inner.model
