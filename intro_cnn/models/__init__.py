"""What the networks share: their building blocks (:mod:`intro_cnn.models.blocks`), the builder
of a network of the registry by name (:mod:`intro_cnn.models.build`), and how training runs
their BatchNormalization layers (:mod:`intro_cnn.models.fused_bn`).

Each network is a module of :mod:`intro_cnn.architectures` (``<name>.py`` with ``build()``)
made of these blocks: editing a block retrains every network, editing
``architectures/<name>.py`` retrains that one. Keras is imported inside the functions.
"""

from intro_cnn.models.blocks import (
    INPUT_SHAPE,
    NUM_CLASSES,
    conv_layers,
    conv_net,
    dense_head,
    output_layer,
)
from intro_cnn.models.build import build_model
from intro_cnn.models.fused_bn import fused_batch_norm

__all__ = [
    "INPUT_SHAPE",
    "NUM_CLASSES",
    "build_model",
    "conv_layers",
    "conv_net",
    "dense_head",
    "fused_batch_norm",
    "output_layer",
]
