"""What the networks share: their building blocks, the registry of architectures, and how
training runs their BatchNormalization layers.

Each network is a module of :mod:`intro_cnn.architectures` (``<name>.py`` with ``build()``); this
module finds them (:func:`model_names`) and builds them under a dtype policy
(:func:`build_model`). Every network starts from ``keras.Input((28, 28, 1))`` and ends in
:func:`output_layer`; the convolutional ones are :func:`conv_net`, exactly as the notebook
defines them (valid padding). Editing a block here retrains every network; editing
``architectures/<name>.py`` retrains that one.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from intro_cnn.architectures import ARCHITECTURES_PACKAGE, model_names, new_model_hint
from intro_cnn.config.schema import PRECISIONS

if TYPE_CHECKING:
    import keras

# Keras (and TensorFlow under it) is imported inside the builders: importing this module is
# cheap, so intro_cnn.config checks model names against the registry before anything heavy loads.

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10


def output_layer(x: keras.KerasTensor) -> keras.KerasTensor:
    """The classifier every network ends in: Dense 10 with softmax."""
    from keras import layers

    # float32 whatever the global policy: a softmax in bfloat16 rounds probabilities near 1
    # to 1 (8 bits of mantissa), which spoils the loss; under "float32" this changes nothing.
    return layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32", name="output")(x)


def dense_head(x: keras.KerasTensor) -> keras.KerasTensor:
    """Flatten, Dense 64 with ReLU, then :func:`output_layer`."""
    from keras import layers

    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(64, activation="relu", name="dense")(x)
    return output_layer(x)


def conv_net(name: str, filters: int, batch_norm: bool) -> keras.Model:
    """The notebook's CNN: two blocks of a 3×3 convolution (``filters`` channels, valid
    padding, ReLU) and 2×2 max pooling, then :func:`dense_head`. With ``batch_norm``, the
    notebook's order: convolution, ReLU, then BatchNormalization."""
    import keras
    from keras import layers

    inputs = keras.Input(INPUT_SHAPE, name="image")
    x = inputs
    for i in (1, 2):
        if batch_norm:
            x = layers.Conv2D(filters, 3, name=f"conv{i}")(x)
            x = layers.Activation("relu", name=f"relu{i}")(x)
            x = layers.BatchNormalization(name=f"bn{i}")(x)
        else:
            x = layers.Conv2D(filters, 3, activation="relu", name=f"conv{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    return keras.Model(inputs, dense_head(x), name=name)


def build_model(name: str, precision: str = "float32") -> keras.Model:
    """A fresh, uncompiled model from ``architectures/<name>.py``; an unknown name lists the
    valid ones.

    ``precision`` is the Keras dtype policy of its layers: "float32", or "mixed_bfloat16"
    (weights kept in float32, layers computing in bfloat16; the output layer stays float32).
    """
    names = model_names()
    if name not in names:
        raise ValueError(
            f"Unknown model {name!r}: valid names are {', '.join(names)}; "
            f"to define it, {new_model_hint(name)}."
        )
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}: valid ones are {list(PRECISIONS)}.")
    builder = importlib.import_module(f"{ARCHITECTURES_PACKAGE}.{name}").build
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        model = builder()
    finally:
        keras.config.set_dtype_policy(previous)
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"{ARCHITECTURES_PACKAGE}.{name}.build() returned {type(model).__name__}, "
            "not a keras.Model."
        )
    return model


def conv_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The model's Conv2D layers in order (for filter and feature-map figures)."""
    from keras import layers

    return [layer for layer in model.layers if isinstance(layer, layers.Conv2D)]


def _fusable(layer: keras.layers.Layer) -> bool:
    """A plain BatchNormalization over the channels of a 4-D NHWC tensor (what FusedBatchNormV3
    computes), without the options the fused kernel does not cover."""
    from keras import layers

    return (
        type(layer) is layers.BatchNormalization
        and layer.axis in (-1, 3)
        and len(layer.input.shape) == 4
        and not layer.renorm
        and not layer.synchronized
    )


def _fused_call(
    layer: keras.layers.BatchNormalization,
    inputs: keras.KerasTensor,
    training: bool | None = None,
    mask: keras.KerasTensor | None = None,
) -> keras.KerasTensor:
    """``BatchNormalization.call`` with TensorFlow's fused kernel for a training step.

    The same arithmetic as Keras' own graph: normalise by the batch mean and the biased batch
    variance in float32, then move the moving statistics with ``momentum``; the kernel returns
    the variance with Bessel's correction, undone here. Inference (moving statistics) and
    anything the fused kernel does not cover take Keras' own path.
    """
    import tensorflow as tf

    if not (training and layer.trainable) or mask is not None:
        return type(layer).call(layer, inputs, training=training, mask=mask)
    x = tf.cast(inputs, "float32")  # Keras computes BN in float32 under any policy, too
    channels = x.shape[-1]
    gamma = tf.cast(layer.gamma, "float32") if layer.scale else tf.ones([channels])
    beta = tf.cast(layer.beta, "float32") if layer.center else tf.zeros([channels])
    y, mean, unbiased_variance = tf.compat.v1.nn.fused_batch_norm(
        x, gamma, beta, epsilon=layer.epsilon, is_training=True
    )
    n = tf.cast(tf.size(x) // channels, "float32")
    variance = unbiased_variance * (n - 1.0) / n
    momentum = layer.momentum
    layer.moving_mean.assign(layer.moving_mean * momentum + mean * (1.0 - momentum))
    layer.moving_variance.assign(layer.moving_variance * momentum + variance * (1.0 - momentum))
    return tf.cast(y, layer.compute_dtype)


@contextlib.contextmanager
def fused_batch_norm(model: keras.Model) -> Iterator[int]:
    """Inside this block, the model's BatchNormalization layers train with TensorFlow's fused
    kernel (one op forward, one backward) instead of Keras' graph of reductions and element-wise
    ops; yields how many layers it switched.

    Same semantics (batch statistics, Keras' momentum and epsilon, moving statistics at
    inference) and the layers stay standard Keras layers: only the instances' ``call`` is
    shadowed, and restored on exit, so the saved model loads without custom code. Why it pays:
    benchmarks/README.md (BatchNormalization on 8 channels).
    """
    switched = [layer for layer in model.layers if _fusable(layer)]
    for layer in switched:
        layer.call = functools.partial(_fused_call, layer)
    try:
        yield len(switched)
    finally:
        for layer in switched:
            del layer.call
