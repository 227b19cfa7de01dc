"""Tiny deterministic datasets for training tests (no files needed)."""

import numpy as np
import pytest

from cnn_jax.training import DeviceData, make_mesh


def blobs(n, seed, size=8):
    """Two classes: bright upper half vs bright lower half, with noise. uint8 [n, size, size, 1]."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n).astype(np.int32)
    images = rng.integers(0, 120, (n, size, size, 1))
    rows = np.arange(size)[None, :, None, None]
    top = (rows < size // 2) == (labels[:, None, None, None] == 0)
    images = np.where(top, images + 120, images).astype(np.uint8)
    return images, labels


@pytest.fixture(scope="session")
def tiny_arrays():
    return (*blobs(300, 0), *blobs(100, 1))


@pytest.fixture
def tiny_data(tiny_arrays):
    return DeviceData.from_arrays(*tiny_arrays, num_classes=2, mesh=make_mesh(1))
