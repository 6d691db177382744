"""The layers the networks are made of: every network starts from ``keras.Input(INPUT_SHAPE)``
and ends in :func:`output_layer`; the convolutional ones are :func:`conv_net`, exactly as the
notebook defines them (valid padding). Editing a block here retrains every network.

Keras is imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

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


def conv_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The model's Conv2D layers in order (for filter and feature-map figures)."""
    from keras import layers

    return [layer for layer in model.layers if isinstance(layer, layers.Conv2D)]
