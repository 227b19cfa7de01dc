"""Locally connected layer: a conv layer without weight sharing."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax

from cnn_jax.ops.conv import as_tuple
from cnn_jax.ops.local import locally_connected2d, locally_connected_output_size


class LocallyConnected2D(nn.Module):
    """One filter bank per output position (``ops.local.locally_connected2d``).

    Attributes:
      features: number of output channels O.
      kernel_size: int or (KH, KW).
      stride: int or pair.
      padding: one of ``ops.PADDINGS`` (Keras's LocallyConnected2D is "valid").
      use_bias: add a bias per position and channel.
      precision: ``lax.Precision`` name of the contraction ("default", "high", "highest");
        None (default) leaves it to JAX (``jax_default_matmul_precision``).

    Input [N, H, W, C] -> output [N, OH, OW, O]; parameters "kernel" [OH, OW, KH, KW, C, O]
    and "bias" [OH, OW, O], so the layer is tied to the input size it is initialised with.
    """

    features: int
    kernel_size: int | Sequence[int] = 3
    stride: int | Sequence[int] = 1
    padding: str = "valid"
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.glorot_uniform(in_axis=(2, 3, 4), out_axis=5,
                                                           batch_axis=(0, 1))
    bias_init: Callable = nn.initializers.zeros
    precision: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kh, kw = as_tuple(self.kernel_size, 2, "kernel_size")
        oh, ow = locally_connected_output_size(x.shape[1:3], (kh, kw), self.padding, self.stride)
        kernel = self.param("kernel", self.kernel_init, (oh, ow, kh, kw, x.shape[-1],
                                                         self.features))
        y = locally_connected2d(x, kernel, padding=self.padding, stride=self.stride,
                                precision=self.precision)
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (oh, ow, self.features))
        return y
