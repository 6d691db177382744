"""Training BatchNormalization layers with TensorFlow's fused kernel, the model unchanged.

Keras computes BatchNormalization as a graph of reductions and element-wise ops; inside
:func:`fused_batch_norm` a training step runs ``FusedBatchNormV3`` instead (one op forward, one
backward), with Keras' semantics. Only the layer instances' ``call`` is shadowed, so the layers
stay standard Keras layers and a saved model loads without custom code. Why it pays:
benchmarks/README.md (BatchNormalization on 8 channels).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras


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
    shadowed, and restored on exit, so the saved model loads without custom code.
    """
    switched = [layer for layer in model.layers if _fusable(layer)]
    for layer in switched:
        layer.call = functools.partial(_fused_call, layer)
    try:
        yield len(switched)
    finally:
        for layer in switched:
            del layer.call
