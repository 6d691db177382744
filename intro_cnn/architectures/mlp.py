"""The classic Keras MNIST dense network: Flatten-Dense512-Dropout-Dense512-Dropout-Dense10
(669,706 parameters), kept to test the notebook's claim that a CNN beats a dense network with
far fewer parameters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from intro_cnn.models import INPUT_SHAPE, output_layer

if TYPE_CHECKING:
    import keras


def build() -> keras.Model:
    import keras
    from keras import layers

    inputs = keras.Input(INPUT_SHAPE, name="image")
    x = layers.Flatten(name="flatten")(inputs)
    x = layers.Dense(512, activation="relu", name="dense1")(x)
    x = layers.Dropout(0.2, name="dropout1")(x)
    x = layers.Dense(512, activation="relu", name="dense2")(x)
    x = layers.Dropout(0.2, name="dropout2")(x)
    return keras.Model(inputs, output_layer(x), name="mlp")
