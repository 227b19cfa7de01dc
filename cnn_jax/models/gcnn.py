"""Group-equivariant CNNs (Cohen & Welling, 2016): "p4cnn" and "p4mcnn".

Lifting conv, then group convs, each followed by an activation and an optional spatial pool;
then a pool over the group axis (invariant features), global average pooling and a dense
head. The logits are invariant to the group's rotations (and mirrors) of the input exactly
when every stage keeps the grid centre on its sampling grid (``ops.group.keeps_centre``):
odd kernels with "same" or "circular" padding, and pooling windows that tile the grid
symmetrically (even sizes before a 2x2 pool: 28 -> 14 -> 7 works, 30 -> 15 -> 7 does not).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax

from cnn_jax import ops
from cnn_jax.layers.conv import activation
from cnn_jax.layers.group import GroupConv, GroupPool, LiftingConv
from cnn_jax.models.registry import register


def pool_group_map(y: jax.Array, window: int, kind: str) -> jax.Array:
    """Spatial max/avg pool of [N, H, W, C, G] maps (group axis folded into channels); the
    same for any 5-D map whose axes 1, 2 are the spatial ones (scale-major [S, H, W, N, C])."""
    n, h, w, c, g = y.shape
    pool = ops.max_pool2d if kind == "max" else ops.avg_pool2d
    out = pool(y.reshape(n, h, w, c * g), window)
    return out.reshape(*out.shape[:3], c, g)


class GroupCNN(nn.Module):
    """P4 / P4M CNN.

    Attributes:
      group: "p4" or "p4m".
      features: filters per stage (the first stage is the lifting conv). Each filter gives
        G maps, so a p4 stage with F filters has the activations of a plain 4F-channel conv.
      kernel_size: odd int (an even one raises ValueError: it breaks the symmetry).
      padding: "same" or "circular".
      activation: name from ``layers.conv.ACTIVATIONS`` (pointwise, so it commutes).
      pool: "max", "avg" or "none": spatial pooling after every stage but the last.
      pool_window: int.
      group_pool: "max" or "mean" over the group axis before the head.
      num_classes: logits.
      conv_impl: ``ops.conv2d`` implementation.
      precision: precision of every dot and conv ("default", "high", "highest"; None: JAX's
        default, see ``TrainConfig.precision``).

    ``__call__``: [N, H, W, C] -> (logits [N, num_classes], features {"lift": [N, h, w, F, G],
    "pool_1", "gconv_2", ..., "group_pool": [N, h, w, F], "gap": [N, F], "logits"}).
    """

    group: str = "p4"
    features: Sequence[int] = (8, 16)
    kernel_size: int = 3
    padding: str = "same"
    activation: str = "relu"
    pool: str = "max"
    pool_window: int = 2
    group_pool: str = "max"
    num_classes: int = 10
    conv_impl: str = "auto"
    precision: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False):
        if not self.features:
            raise ValueError(f"features must name at least one stage, got {self.features!r}")
        common = dict(group=self.group, kernel_size=self.kernel_size, padding=self.padding,
                      impl=self.conv_impl, precision=self.precision)
        convs = [("lift", LiftingConv(self.features[0], name="lift", **common))]
        convs += [(f"gconv_{i}", GroupConv(f, name=f"gconv_{i}", **common))
                  for i, f in enumerate(self.features[1:], 2)]
        x, features = run_stages(x, convs, activation(self.activation), self.pool,
                                 self.pool_window)
        return invariant_head(x, features, self.group_pool, "group_pool", self.num_classes,
                              self.precision)


def run_stages(x, convs, act, pool: str, pool_window: int):
    """conv -> act (-> spatial pool, except after the last) for maps with a trailing axis.

    Args:
      x: the input.
      convs: [(stage name, module)].
      act: pointwise activation.
      pool: "max", "avg" or "none".
      pool_window: int.

    Returns:
      (last map [N, h, w, F, G], {stage name: map} with "pool_i" entries after stage i).
    """
    if pool not in ("max", "avg", "none"):
        raise ValueError(f"pool must be 'max', 'avg' or 'none', got {pool!r}")
    features = {}
    for i, (name, conv) in enumerate(convs, 1):
        x = act(conv(x))
        features[name] = x
        if pool != "none" and i < len(convs):
            x = pool_group_map(x, pool_window, pool)
            features[f"pool_{i}"] = x
    return x, features


def invariant_head(y, features, reduce: str, pool_name: str, num_classes: int,
                   precision: str | None = None):
    """Pool over the trailing axis, global average pool, dense logits (inside a compact call).

    ``precision`` is the dense layer's (None: JAX's default).

    Returns:
      (logits [N, num_classes], ``features`` with ``pool_name``, "gap" and "logits" added).
    """
    x = GroupPool(reduce)(y)
    features[pool_name] = x
    x = ops.global_avg_pool(x)
    features["gap"] = x
    logits = nn.Dense(num_classes, precision=precision, name="head")(x)
    features["logits"] = logits
    return logits, features


register("p4cnn")(functools.partial(GroupCNN, group="p4"))
register("p4mcnn")(functools.partial(GroupCNN, group="p4m"))
