"""Locally connected network ("lcn"): the CNN's layout without weight sharing."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax

from cnn_jax import ops
from cnn_jax.layers.conv import activation
from cnn_jax.layers.local import LocallyConnected2D
from cnn_jax.models.registry import register


@register("lcn")
class LCN(nn.Module):
    """Locally connected stages (unshared filters) -> activation -> pool, then a dense head.

    Attributes:
      features: filters per stage.
      kernel_size: int.
      padding: as ``ops.conv2d`` (Keras's LocallyConnected2D: "valid").
      activation: pointwise activation name.
      pool: "max", "avg" or "none" after every stage, window ``pool_window``.
      dense_units: hidden dense layers of the head.
      num_classes: logits.
      precision: precision of every dot and conv ("default", "high", "highest"; None: JAX's
        default, see ``TrainConfig.precision``).

    The parameters depend on the input size it is initialised with.
    ``__call__``: [N, H, W, C] -> (logits, features {"local_1", "pool_1", ..., "dense_1",
    "logits"}).
    """

    features: Sequence[int] = (16, 32)
    kernel_size: int = 3
    padding: str = "valid"
    activation: str = "relu"
    pool: str = "max"
    pool_window: int = 2
    dense_units: Sequence[int] = (64,)
    num_classes: int = 10
    precision: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False):
        if self.pool not in ("max", "avg", "none"):
            raise ValueError(f"pool must be 'max', 'avg' or 'none', got {self.pool!r}")
        act = activation(self.activation)
        features = {}
        for i, f in enumerate(self.features, 1):
            x = act(LocallyConnected2D(f, self.kernel_size, padding=self.padding,
                                       precision=self.precision, name=f"local_{i}")(x))
            features[f"local_{i}"] = x
            if self.pool != "none":
                x = (ops.max_pool2d if self.pool == "max" else ops.avg_pool2d)(x, self.pool_window)
                features[f"pool_{i}"] = x
        x = x.reshape(x.shape[0], -1)
        for j, units in enumerate(self.dense_units, 1):
            x = act(nn.Dense(units, precision=self.precision, name=f"dense_{j}")(x))
            features[f"dense_{j}"] = x
        logits = nn.Dense(self.num_classes, precision=self.precision, name="head")(x)
        features["logits"] = logits
        return logits, features
