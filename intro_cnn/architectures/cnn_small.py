"""``cnn`` with 8 filters per convolution (14,178 parameters)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from intro_cnn.models import conv_net

if TYPE_CHECKING:
    import keras


def build() -> keras.Model:
    return conv_net("cnn_small", filters=8, batch_norm=False)
