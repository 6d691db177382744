"""The model variants: one builder per name, architectures exactly as the notebook defines them.

Every builder starts from ``keras.Input((28, 28, 1))`` and uses valid padding. ``mlp`` is the
classic Keras MNIST dense network, kept to test the notebook's claim that a CNN beats a dense
network with far fewer parameters.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from stages.config import PRECISIONS

if TYPE_CHECKING:
    import keras

# Keras (and TensorFlow under it) is imported inside the builders: importing this module is
# cheap, so stages.config checks model names against the registry before anything heavy loads.

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10


def _output(x: keras.KerasTensor) -> keras.KerasTensor:
    from keras import layers

    # float32 whatever the global policy: a softmax in bfloat16 rounds probabilities near 1
    # to 1 (8 bits of mantissa), which spoils the loss; under "float32" this changes nothing.
    return layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32", name="output")(x)


def _head(x: keras.KerasTensor) -> keras.KerasTensor:
    from keras import layers

    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(64, activation="relu", name="dense")(x)
    return _output(x)


def _conv_net(name: str, filters: int, batch_norm: bool) -> keras.Model:
    import keras
    from keras import layers

    inputs = keras.Input(INPUT_SHAPE, name="image")
    x = inputs
    for i in (1, 2):
        if batch_norm:
            # The notebook's order: convolution, ReLU, then BatchNormalization.
            x = layers.Conv2D(filters, 3, name=f"conv{i}")(x)
            x = layers.Activation("relu", name=f"relu{i}")(x)
            x = layers.BatchNormalization(name=f"bn{i}")(x)
        else:
            x = layers.Conv2D(filters, 3, activation="relu", name=f"conv{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    return keras.Model(inputs, _head(x), name=name)


def cnn() -> keras.Model:
    """Conv32-Pool-Conv32-Pool-Dense64-Dense10 (61,482 parameters)."""
    return _conv_net("cnn", filters=32, batch_norm=False)


def cnn_small() -> keras.Model:
    """The same with 8 filters per convolution (14,178 parameters)."""
    return _conv_net("cnn_small", filters=8, batch_norm=False)


def cnn_small_bn() -> keras.Model:
    """``cnn_small`` with BatchNormalization after each convolution's ReLU (14,242)."""
    return _conv_net("cnn_small_bn", filters=8, batch_norm=True)


def mlp() -> keras.Model:
    """Flatten-Dense512-Dropout-Dense512-Dropout-Dense10 (669,706 parameters)."""
    import keras
    from keras import layers

    inputs = keras.Input(INPUT_SHAPE, name="image")
    x = layers.Flatten(name="flatten")(inputs)
    x = layers.Dense(512, activation="relu", name="dense1")(x)
    x = layers.Dropout(0.2, name="dropout1")(x)
    x = layers.Dense(512, activation="relu", name="dense2")(x)
    x = layers.Dropout(0.2, name="dropout2")(x)
    return keras.Model(inputs, _output(x), name="mlp")


MODEL_BUILDERS: dict[str, Callable[[], keras.Model]] = {
    "cnn": cnn,
    "cnn_small": cnn_small,
    "cnn_small_bn": cnn_small_bn,
    "mlp": mlp,
}


def build_model(name: str, precision: str = "float32") -> keras.Model:
    """A fresh, uncompiled model; an unknown name lists the valid ones.

    ``precision`` is the Keras dtype policy of its layers: "float32", or "mixed_bfloat16"
    (weights kept in float32, layers computing in bfloat16; the output layer stays float32).
    """
    try:
        builder = MODEL_BUILDERS[name]
    except KeyError:
        raise ValueError(
            f"Unknown model {name!r}: valid names are {', '.join(sorted(MODEL_BUILDERS))}. "
            "Add a builder to stages/models.py to define a new one."
        ) from None
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}: valid ones are {list(PRECISIONS)}.")
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        return builder()
    finally:
        keras.config.set_dtype_policy(previous)


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
