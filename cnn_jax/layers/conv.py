"""Plain 2-D convolution layer over ``ops.conv2d`` (parameters here, math there)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax import ops


class Conv2D(nn.Module):
    """Shared-weight convolution (cross-correlation), Keras-style initialisation.

    Attributes:
      features: number of filters O.
      kernel_size: (KH, KW) or int.
      stride, dilation: int or pair.
      padding: one of ``ops.PADDINGS``.
      use_bias: add a per-filter bias.
      impl: ``"auto"`` | ``"xla"`` | ``"matmul"`` (see ``ops.conv2d``).
      precision: ``lax.Precision`` name of the contraction ("default", "high", "highest");
        None (default) leaves it to JAX (``jax_default_matmul_precision``).

    Input [N, H, W, C] -> output [N, H', W', O].
    """

    features: int
    kernel_size: int | Sequence[int] = 3
    stride: int | Sequence[int] = 1
    dilation: int | Sequence[int] = 1
    padding: str = "valid"
    use_bias: bool = True
    impl: str = "auto"
    kernel_init: Callable = nn.initializers.glorot_uniform()
    bias_init: Callable = nn.initializers.zeros
    precision: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kh, kw = ops.conv.as_tuple(self.kernel_size, 2, "kernel_size")
        kernel = self.param("kernel", self.kernel_init, (kh, kw, x.shape[-1], self.features))
        y = ops.conv2d(x, kernel, padding=self.padding, stride=self.stride,
                       dilation=self.dilation, impl=self.impl, precision=self.precision)
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,))
        return y


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "elu": nn.elu,
    "gelu": nn.gelu,
    "tanh": jnp.tanh,
    "sigmoid": nn.sigmoid,
    "linear": lambda x: x,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """The activation function called ``name`` (one of ``ACTIVATIONS``)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]
