"""Building a network of the registry by name, under a Keras dtype policy.

Each network is a module of :mod:`intro_cnn.architectures` (``<name>.py`` with ``build()``),
imported here from its name, so that editing ``architectures/<name>.py`` retrains that network
alone. Keras is imported inside :func:`build_model`: importing this module is cheap, so
:mod:`intro_cnn.config` checks model names against the registry before anything heavy loads.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from intro_cnn.architectures import ARCHITECTURES_PACKAGE, model_names, new_model_hint
from intro_cnn.config.schema import PRECISIONS
from intro_cnn.runtime.errors import ConfigError, StageError

if TYPE_CHECKING:
    import keras


def build_model(name: str, precision: str = "float32") -> keras.Model:
    """A fresh, uncompiled model from ``architectures/<name>.py``; an unknown name lists the
    valid ones.

    ``precision`` is the Keras dtype policy of its layers: "float32", or "mixed_bfloat16"
    (weights kept in float32, layers computing in bfloat16; the output layer stays float32).
    """
    names = model_names()
    if name not in names:
        raise ConfigError(
            f"Unknown model {name!r}: valid names are {', '.join(names)}; "
            f"to define it, {new_model_hint(name)}."
        )
    if precision not in PRECISIONS:
        raise ConfigError(f"Unknown precision {precision!r}: valid ones are {list(PRECISIONS)}.")
    builder = importlib.import_module(f"{ARCHITECTURES_PACKAGE}.{name}").build
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        model = builder()
    finally:
        keras.config.set_dtype_policy(previous)
    if not isinstance(model, keras.Model):
        raise StageError(
            f"{ARCHITECTURES_PACKAGE}.{name}.build() returned {type(model).__name__}, "
            "not a keras.Model."
        )
    return model
