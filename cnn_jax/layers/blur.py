"""BlurPool layers (Zhang 2019): anti-aliased downsampling, no parameters."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax

from cnn_jax.ops import blur as blur_ops


class BlurPool(nn.Module):
    """Binomial blur, then subsampling by ``stride`` (replaces a strided subsampling).

    Attributes: filter_size, stride, padding, impl as ``ops.blur.blur_pool2d`` (padding
    "reflect" by default, as Zhang 2019).
    [N, H, W, C] -> [N, ceil(H / stride), ceil(W / stride), C].
    """

    filter_size: int = 3
    stride: int | Sequence[int] = 2
    padding: str = "reflect"
    impl: str = "auto"

    def __call__(self, x: jax.Array) -> jax.Array:
        return blur_ops.blur_pool2d(x, filter_size=self.filter_size, stride=self.stride,
                                    padding=self.padding, impl=self.impl)


class MaxBlurPool(nn.Module):
    """Dense max over ``window``, then BlurPool: the anti-aliased max-pool.

    Attributes: window, stride, filter_size, padding, impl as ``ops.blur.max_blur_pool2d``
    (padding "reflect" by default).
    [N, H, W, C] -> [N, H', W', C] with ``ops.max_pool2d(x, window, stride)``'s size:
    H' = floor((H - window) / stride) + 1.
    """

    window: int | Sequence[int] = 2
    stride: int | Sequence[int] = 2
    filter_size: int = 3
    padding: str = "reflect"
    impl: str = "auto"

    def __call__(self, x: jax.Array) -> jax.Array:
        return blur_ops.max_blur_pool2d(x, self.window, stride=self.stride,
                                        filter_size=self.filter_size, padding=self.padding,
                                        impl=self.impl)
