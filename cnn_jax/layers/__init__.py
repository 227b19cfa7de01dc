"""Flax layers: they create parameters and call the pure functions in ``cnn_jax.ops``."""

from cnn_jax.layers.blur import BlurPool, MaxBlurPool
from cnn_jax.layers.conv import ACTIVATIONS, Conv2D, activation
from cnn_jax.layers.group import GroupConv, GroupPool, LiftingConv
from cnn_jax.layers.local import LocallyConnected2D
from cnn_jax.layers.scale import ScaleConv, ScaleLiftingConv

__all__ = [
    "ACTIVATIONS",
    "BlurPool",
    "Conv2D",
    "GroupConv",
    "GroupPool",
    "LiftingConv",
    "LocallyConnected2D",
    "MaxBlurPool",
    "ScaleConv",
    "ScaleLiftingConv",
    "activation",
]
