"""Pure math with no parameters: convolution from its definition, filters, pooling."""

from cnn_jax.ops.conv import (
    PADDINGS,
    conv2d,
    convolve1d,
    convolve1d_reference,
    convolve2d,
    convolve2d_reference,
    correlate1d,
    correlate1d_reference,
    correlate2d,
    correlate2d_reference,
    padding_amounts,
    resolve_impl,
)
from cnn_jax.ops.filters import SOBEL_X, SOBEL_Y, sobel_edges
from cnn_jax.ops.pooling import avg_pool2d, global_avg_pool, max_pool2d

__all__ = [
    "PADDINGS",
    "SOBEL_X",
    "SOBEL_Y",
    "avg_pool2d",
    "conv2d",
    "convolve1d",
    "convolve1d_reference",
    "convolve2d",
    "convolve2d_reference",
    "correlate1d",
    "correlate1d_reference",
    "correlate2d",
    "correlate2d_reference",
    "global_avg_pool",
    "max_pool2d",
    "padding_amounts",
    "resolve_impl",
    "sobel_edges",
]
