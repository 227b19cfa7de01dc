"""Classic fixed filters: Sobel edge detectors.

Convention (image axes: row index y grows downwards, column index x grows rightwards):
``SOBEL_X`` responds to intensity change along x, i.e. to *vertical* edges, and
``SOBEL_Y`` to change along y (horizontal edges). Applied by cross-correlation, a dark-to-
bright step to the right gives a positive ``gx``. The lecture's slide labels the two the
other way round (it names a filter by the orientation of the edge it finds).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax.ops.conv import correlate2d

__all__ = ["SOBEL_X", "SOBEL_Y", "sobel_edges"]

# numpy constants: importing the module does not start a JAX backend.
SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], np.float32)
SOBEL_Y = SOBEL_X.T


def sobel_edges(image: jax.Array, *, padding: str = "same"):
    """Sobel gradients of a single-channel image.

    Args:
      image: [H, W] intensities.
      padding: padding of the cross-correlation (default ``"same"``, zero fill).

    Returns:
      ``(gx, gy, magnitude)``, each [H', W'] (``[H, W]`` for ``"same"``), with
      ``magnitude = sqrt(gx**2 + gy**2)``.

    >>> step = jnp.array([[0., 0., 1., 1.]] * 4)
    >>> gx, gy, mag = sobel_edges(step, padding="valid")
    >>> gx.tolist(), gy.tolist()
    ([[4.0, 4.0], [4.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]])
    """
    gx = correlate2d(image, SOBEL_X, padding=padding)
    gy = correlate2d(image, SOBEL_Y, padding=padding)
    return gx, gy, jnp.sqrt(gx**2 + gy**2)
