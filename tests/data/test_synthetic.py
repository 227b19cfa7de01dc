"""The synthetic bars: same on every call, balanced, and each bar at its class's angle."""

import numpy as np

from cnn_jax import data
from cnn_jax.data.synthetic import bars


def orientation_degrees(image: np.ndarray) -> float:
    """The principal axis of the pixel mass, in degrees anticlockwise from the horizontal."""
    rows, cols = np.nonzero(image > 100)
    x, y = cols - cols.mean(), -(rows - rows.mean())  # y up, as displayed
    cov = np.cov(np.stack([x, y]))
    return float(np.degrees(0.5 * np.arctan2(2 * cov[0, 1], cov[0, 0] - cov[1, 1])) % 180)


def test_loads_through_load_deterministically():
    train = data.load("synthetic_bars", "train")
    again = data.load("synthetic_bars", "train")
    test = data.load("synthetic_bars", "test")
    assert train.images.shape == (4096, 28, 28, 1) and test.images.shape == (1024, 28, 28, 1)
    assert train.source == "synthetic" and train.info.num_classes == 4
    np.testing.assert_array_equal(train.images, again.images)
    np.testing.assert_array_equal(train.labels, again.labels)
    assert not np.array_equal(train.images[:1024], test.images)
    np.testing.assert_array_equal(np.bincount(train.labels), [1024] * 4)


def test_each_bar_lies_at_its_class_angle():
    images, labels = bars(200, seed=5)
    for image, label in zip(images[..., 0], labels, strict=True):
        error = (orientation_degrees(image) - 45.0 * label + 90) % 180 - 90
        assert abs(error) <= 14, (label, orientation_degrees(image))


def test_rotating_by_90_degrees_changes_the_class_by_two():
    images, labels = bars(40, seed=6)
    for image, label in zip(images[..., 0], labels, strict=True):
        turned = np.rot90(image)  # anticlockwise as displayed
        error = (orientation_degrees(turned) - 45.0 * ((label + 2) % 4) + 90) % 180 - 90
        assert abs(error) <= 14


def test_seeds_differ_and_repeat():
    a, _ = bars(8, seed=0)
    assert np.array_equal(a, bars(8, seed=0)[0]) and not np.array_equal(a, bars(8, seed=1)[0])
