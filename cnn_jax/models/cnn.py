"""A configurable plain CNN: conv -> activation -> pool stages, then a dense or GAP head."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax

from cnn_jax import ops
from cnn_jax.layers.conv import Conv2D, activation
from cnn_jax.models.mlp import KERAS_KERNEL_INIT
from cnn_jax.models.registry import register


def _per_stage(value, n: int, name: str) -> tuple:
    values = tuple(value) if isinstance(value, Sequence) and not isinstance(value, str) else (
        (value,) * n)
    if len(values) != n:
        raise ValueError(f"{name} must be one value or {n} values (one per stage), got {value!r}")
    return values


@register("cnn")
class CNN(nn.Module):
    """Plain CNN; the default is the lecture/benchmark's small network
    Conv32(3x3)-maxpool-Conv64(3x3)-maxpool-Dense128-Dense10.

    Attributes:
      features: filters per conv stage.
      kernel_size, strides: one value, or one per stage.
      padding: conv padding (``ops.PADDINGS``; Keras default "valid").
      pool: "max" | "avg" | "none", applied after every stage with window ``pool_window``.
      head: "dense" (flatten -> ``dense_units`` -> logits), "gap" (global average pool ->
        logits) or "gmp" (global max pool -> logits); the global heads accept any input size
        and are translation invariant up to borders.
      conv_impl: ``ops.conv2d`` implementation ("auto" picks by backend).
      batch_norm: BatchNorm (Keras's momentum 0.99 and epsilon 1e-3) between every conv and
        its activation ("cnn_bn" sets it). Those convs have no bias: BatchNorm removes it, so
        its gradient is rounding noise, which Adam would scale up into full-size steps.
      precision: precision of every dot and conv ("default", "high", "highest"; None: JAX's
        default, see ``TrainConfig.precision``).

    ``__call__(x, *, train=False, mask=None)``: [N, H, W, C] -> (logits [N, num_classes],
    features with one entry per stage, "conv_1", "pool_1", ..., and "logits"). With
    ``train=True`` BatchNorm normalises with the statistics of the examples where ``mask``
    [N] is True (all if None) and updates its running averages; otherwise it uses them.
    """

    features: Sequence[int] = (32, 64)
    kernel_size: int | Sequence[int] = 3
    strides: int | Sequence[int] = 1
    padding: str = "valid"
    activation: str = "relu"
    pool: str = "max"
    pool_window: int = 2
    head: str = "dense"
    dense_units: Sequence[int] = (128,)
    num_classes: int = 10
    conv_impl: str = "auto"
    batch_norm: bool = False
    precision: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False, mask: jax.Array | None = None):
        if self.pool not in ("max", "avg", "none"):
            raise ValueError(f"pool must be 'max', 'avg' or 'none', got {self.pool!r}")
        if self.head not in ("dense", "gap", "gmp"):
            raise ValueError(f"head must be 'dense', 'gap' or 'gmp', got {self.head!r}")
        for name in ("features", "dense_units"):
            if any(n < 1 for n in getattr(self, name)):
                raise ValueError(f"{name} must be positive counts, got {getattr(self, name)!r}")
        n = len(self.features)
        kernels = _per_stage(self.kernel_size, n, "kernel_size")
        strides = _per_stage(self.strides, n, "strides")
        act = activation(self.activation)
        features = {}
        for i, (f, k, s) in enumerate(zip(self.features, kernels, strides, strict=True), 1):
            x = Conv2D(f, k, stride=s, padding=self.padding, use_bias=not self.batch_norm,
                       impl=self.conv_impl, precision=self.precision, name=f"conv_{i}")(x)
            if self.batch_norm:
                x = nn.BatchNorm(use_running_average=not train, momentum=0.99, epsilon=1e-3,
                                 name=f"bn_{i}")(x, mask=None if mask is None else
                                                 mask[:, None, None, None])
            x = act(x)
            features[f"conv_{i}"] = x
            if self.pool != "none":
                pool = ops.max_pool2d if self.pool == "max" else ops.avg_pool2d
                x = pool(x, self.pool_window)
                features[f"pool_{i}"] = x
        if self.head == "gap":
            x = ops.global_avg_pool(x)
        elif self.head == "gmp":
            x = x.max(axis=(1, 2))
        else:
            x = x.reshape(x.shape[0], -1)
            for j, units in enumerate(self.dense_units, 1):
                x = act(nn.Dense(units, kernel_init=KERAS_KERNEL_INIT, precision=self.precision,
                                 name=f"dense_{j}")(x))
                features[f"dense_{j}"] = x
        logits = nn.Dense(self.num_classes, kernel_init=KERAS_KERNEL_INIT,
                          precision=self.precision, name="head")(x)
        features["logits"] = logits
        return logits, features


@register("cnn_bn")
class CNNBN(CNN):
    """The plain CNN with BatchNorm after every conv (``batch_norm=True``); see ``CNN``."""

    batch_norm: bool = True
