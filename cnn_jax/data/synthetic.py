"""Small image-classification sets generated in code, for tests and demos that need no files.

``synthetic_bars``: one anti-aliased bar per 28x28x1 image; the class is its orientation
(0, 45, 90 or 135 degrees anticlockwise from the horizontal as displayed, jittered by up
to 10 degrees), with random position, length, width, brightness and a little noise.
Rotating an image by 90 degrees maps class ``k`` to class ``(k + 2) % 4``, which makes
the set handy for rotation-equivariance demos. Train and test are drawn with different
seeds; both are the same on every call.
"""

from __future__ import annotations

import functools

import numpy as np

from cnn_jax.data.dataset import Dataset, DatasetInfo

__all__ = ["SYNTHETIC", "bars", "load_synthetic"]

BARS_INFO = DatasetInfo(
    name="synthetic_bars",
    num_classes=4,
    class_names=("horizontal", "rising", "vertical", "falling"),
    image_shape=(28, 28, 1),
)
_BARS_SIZES = {"train": 4096, "test": 1024}
_BARS_SEEDS = {"train": 0, "test": 1}


def bars(num_examples: int, seed: int, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """Renders oriented bars.

    Args:
      num_examples: N; the four classes get ``N // 4`` or ``N // 4 + 1`` examples each.
      seed: NumPy seed; the same seed gives the same images.
      size: image height and width.

    Returns:
      ``(images, labels)``: uint8 [N, size, size, 1] and int32 [N].
    """
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(num_examples) % 4).astype(np.int32)
    angle = np.deg2rad(45.0 * labels + rng.uniform(-10, 10, num_examples))
    centre = (size - 1) / 2 + rng.uniform(-0.15, 0.15, (num_examples, 2)) * size
    half_length = rng.uniform(0.2, 0.35, num_examples) * size
    half_width = rng.uniform(0.8, 1.6, num_examples)
    brightness = rng.uniform(160, 255, num_examples)

    # Distance of each pixel centre to the segment; rows grow downwards, so "up" is -y.
    rows, cols = np.mgrid[:size, :size].astype(np.float64)
    dx = cols[None] - centre[:, 0, None, None]
    dy = rows[None] - centre[:, 1, None, None]
    ux, uy = np.cos(angle)[:, None, None], -np.sin(angle)[:, None, None]
    along = np.clip(dx * ux + dy * uy, -half_length[:, None, None], half_length[:, None, None])
    dist = np.hypot(dx - along * ux, dy - along * uy)
    coverage = np.clip(half_width[:, None, None] + 0.5 - dist, 0.0, 1.0)
    pixels = coverage * brightness[:, None, None] + rng.normal(0, 6, coverage.shape)
    images = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)[..., None]
    return images, labels


def load_synthetic(name: str, split: str) -> Dataset:
    """The base split (``"train"`` or ``"test"``) of the synthetic set ``name``."""
    info = SYNTHETIC[name][0]
    images, labels = _generate(name, split)
    return Dataset(images=images, labels=labels, info=info, source="synthetic")


@functools.lru_cache(maxsize=4)
def _generate(name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Each split is rendered once per process; the arrays are shared, hence read-only."""
    info, sizes, seeds = SYNTHETIC[name]
    images, labels = bars(sizes[split], seeds[split], info.image_shape[0])
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


# name -> (info, examples per split, seed per split)
SYNTHETIC = {"synthetic_bars": (BARS_INFO, _BARS_SIZES, _BARS_SEEDS)}
