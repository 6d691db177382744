"""The notebook's CNN: Conv32-Pool-Conv32-Pool-Dense64-Dense10 (61,482 parameters)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from intro_cnn.models import conv_net

if TYPE_CHECKING:
    import keras


def build() -> keras.Model:
    return conv_net("cnn", filters=32, batch_norm=False)
