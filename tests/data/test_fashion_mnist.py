"""The real Fashion-MNIST, as the Debian package ``dataset-fashion-mnist`` installs it.

CI runs these on the real files (``make test`` installs the package first), so a missing
package fails here with the fix rather than skipping.
"""

import os

import numpy as np
import pytest

from cnn_jax import data
from cnn_jax.data import sources

FOLDER = sources.SYSTEM_IDX_DIRS["fashion_mnist"][0]


@pytest.fixture(scope="module")
def fashion_mnist():
    if not os.path.isdir(FOLDER):
        pytest.fail(f"{FOLDER} is missing: run `make data` (apt-get install dataset-fashion-mnist)")
    return {split: data.load("fashion_mnist", split, data_dir=FOLDER, download=False)
            for split in data.SPLITS}


@pytest.mark.parametrize("split, count", [("train", 60_000), ("test", 10_000)])
def test_counts_shape_and_class_balance(fashion_mnist, split, count):
    ds = fashion_mnist[split]
    assert ds.source == f"idx:{FOLDER}"
    assert ds.images.shape == (count, 28, 28, 1) and ds.images.dtype == np.uint8
    assert ds.info.num_classes == 10 and ds.info.class_names[0] == "T-shirt/top"
    np.testing.assert_array_equal(np.bincount(ds.labels, minlength=10), [count // 10] * 10)


def test_pixels_look_like_fashion_mnist(fashion_mnist):
    train = fashion_mnist["train"]
    # Known facts of the published files: the first two labels and the full pixel range.
    np.testing.assert_array_equal(train.labels[:2], [9, 0])
    assert train.images.min() == 0 and train.images.max() == 255
    assert 70 < train.images.mean() < 80  # the mean pixel is about 72.94
    # Train and test are different images.
    assert not np.array_equal(train.images[:100], fashion_mnist["test"].images[:100])


def test_default_resolution_finds_the_system_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))  # no prepared copy there
    ds = data.load("fashion_mnist", "test[:10]")
    assert ds.source.startswith(f"idx:{FOLDER}") and len(ds) == 10
