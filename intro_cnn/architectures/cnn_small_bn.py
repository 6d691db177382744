"""``cnn_small`` with BatchNormalization after each convolution's ReLU (14,242 parameters)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from intro_cnn.models import conv_net

if TYPE_CHECKING:
    import keras


def build() -> keras.Model:
    return conv_net("cnn_small_bn", filters=8, batch_norm=True)
