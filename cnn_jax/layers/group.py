"""P4 / P4M group convolution layers (Cohen & Welling, 2016) over ``ops.group``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax

from cnn_jax.ops import group as group_ops
from cnn_jax.ops.conv import as_tuple


def _square_kernel(kernel_size, padding: str) -> int:
    kh, kw = as_tuple(kernel_size, 2, "kernel_size")
    if kh != kw:
        raise ValueError(f"kernel_size must be square for a group conv, got {kernel_size!r}")
    group_ops.check_centred_kernel(kh, padding)
    return kh


class _GroupConvAttributes(nn.Module):
    """The attributes shared by the lifting and the group conv."""

    features: int
    group: str = "p4"
    kernel_size: int | Sequence[int] = 3
    stride: int | Sequence[int] = 1
    padding: str = "same"
    use_bias: bool = True
    impl: str = "auto"
    kernel_init: Callable = nn.initializers.glorot_uniform()
    bias_init: Callable = nn.initializers.zeros
    precision: str | None = None


class LiftingConv(_GroupConvAttributes):
    """Z2 -> G: correlates the image with every rotated (and mirrored) copy of each filter.

    Attributes:
      features: filters O (each yields G maps).
      group: "p4" or "p4m".
      kernel_size: K; must be odd with "same" or "circular" padding (an even window moves the
        rotation centre off the grid and raises ValueError); any K with "valid" or "full".
      stride, padding: as ``ops.conv2d``.
      use_bias: one bias per filter, shared over the group (keeps equivariance).
      impl: ``ops.conv2d`` implementation.
      precision: ``lax.Precision`` name of the contraction ("default", "high", "highest");
        None (default) leaves it to JAX (``jax_default_matmul_precision``).

    Input [N, H, W, C] -> output [N, H', W', O, G]; parameter "kernel" [K, K, C, O].
    """

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = _square_kernel(self.kernel_size, self.padding)
        kernel = self.param("kernel", self.kernel_init, (k, k, x.shape[-1], self.features))
        y = group_ops.lifting_conv2d(x, kernel, self.group, padding=self.padding,
                                     stride=self.stride, impl=self.impl,
                                     precision=self.precision)
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features, 1))
        return y


class GroupConv(_GroupConvAttributes):
    """G -> G: group correlation of a map on the group with transformed filters.

    Attributes:
      features: filters O.
      group: "p4" or "p4m".
      kernel_size, stride, padding, use_bias, impl, precision: as ``LiftingConv``.

    Input [N, H, W, C, G] -> output [N, H', W', O, G]; parameter "kernel" [K, K, C, G, O].
    """

    @nn.compact
    def __call__(self, y: jax.Array) -> jax.Array:
        k = _square_kernel(self.kernel_size, self.padding)
        n = group_ops.group_order(self.group)
        if y.ndim != 5 or y.shape[-1] != n:
            raise ValueError(f"input must be [N, H, W, C, {n}] for group {self.group!r}, got "
                             f"shape {y.shape}")
        kernel = self.param("kernel", self.kernel_init, (k, k, y.shape[3], n, self.features))
        out = group_ops.group_conv2d(y, kernel, self.group, padding=self.padding,
                                     stride=self.stride, impl=self.impl,
                                     precision=self.precision)
        if self.use_bias:
            out = out + self.param("bias", self.bias_init, (self.features, 1))
        return out


class GroupPool(nn.Module):
    """Max or mean over the trailing group (or scale) axis: [N, H, W, C, G] -> [N, H, W, C]."""

    reduce: str = "max"

    def __call__(self, y: jax.Array) -> jax.Array:
        return group_ops.group_pool(y, self.reduce)
