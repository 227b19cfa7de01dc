"""Accuracy under a transform sweep: ``accuracy_under_transform`` against a NumPy loop over
magnitudes; the named kinds (``transformed``, ``accuracy_sweep``) against hand-made references."""

import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax import transforms
from cnn_jax.experiments import robustness
from cnn_jax.experiments.robustness import accuracy_under_transform


def shift_right_np(x, m):
    out = np.zeros_like(x)
    out[:, :, m:] = x[:, :, : x.shape[2] - m]
    return out


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (37, 6, 7, 2), dtype=np.uint8)  # 37: a padded last batch
    weights = rng.normal(size=(6 * 7 * 2, 3)).astype(np.float32)
    labels = (np.argmax(images.reshape(37, -1) / 255.0 @ weights, -1)).astype(np.int32)
    return images, labels, weights


@pytest.mark.parametrize("static", [False, True])
def test_matches_a_numpy_loop(problem, static):
    images, labels, weights = problem
    mean, std = np.float32([0.3, 0.5]), np.float32([0.2, 0.4])
    predict = lambda w, x: x.reshape(x.shape[0], -1) @ w
    got = accuracy_under_transform(
        predict, weights, images, labels, lambda x, m: transforms.shift(x, 0, m, mode="zero"),
        [0, 1, 3], batch_size=8, mean=mean, std=std, static=static)
    want = []
    for m in (0, 1, 3):
        x = (shift_right_np(images / 255.0, m) - mean) / std
        want.append(np.mean(np.argmax(x.reshape(37, -1) @ weights, -1) == labels))
    # Labels were made without normalisation, so accuracy at 0 is below 1: a real check.
    np.testing.assert_allclose(got, want, atol=1.5 / 37)  # one example may flip on float ties
    assert got[0] < 1.0


def test_unnormalised_identity_is_perfect(problem):
    images, labels, weights = problem
    predict = lambda w, x: x.reshape(x.shape[0], -1) @ w
    acc = accuracy_under_transform(predict, weights, images, labels, lambda x, m: x * m,
                                   [1.0, -1.0])
    assert acc[0] == 1.0 and acc[1] < 0.5  # negating the input flips the argmax


def test_bad_input_is_named(problem):
    images, labels, _ = problem
    with pytest.raises(ValueError, match="images must be uint8"):
        accuracy_under_transform(lambda p, x: x, None, images.astype(np.float32), labels,
                                 lambda x, m: x, [0])
    with pytest.raises(ValueError, match="labels must be"):
        accuracy_under_transform(lambda p, x: x, None, images, labels[:3], lambda x, m: x, [0])
    with pytest.raises(ValueError, match="batch_size"):
        accuracy_under_transform(lambda p, x: x, None, images, jnp.asarray(labels),
                                 lambda x, m: x, [0], batch_size=0)


def _asymmetric(n=3, size=8):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, size, size, 1)).astype(np.uint8)


def test_shift_matches_a_zero_filled_roll_in_each_examples_direction():
    images = _asymmetric(n=16)
    out = robustness.transformed(images, "shift", 2, seed=3)
    directions = robustness.shift_directions(16, seed=3)
    assert {tuple(d) for d in directions} <= {(1, 0), (-1, 0), (0, 1), (0, -1)}
    for image, moved, (dy, dx) in zip(images, out, directions * 2, strict=True):
        want = np.zeros_like(image)
        h, w = image.shape[:2]
        want[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
            image[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
        np.testing.assert_array_equal(moved, want)


def test_zero_magnitudes_are_the_identity():
    images = _asymmetric()
    for kind, m in (("shift", 0), ("rotate", 0.0), ("scale", 1.0)):
        np.testing.assert_array_equal(robustness.transformed(images, kind, m), images)


def test_quarter_turn_is_numpy_rot90_and_not_its_inverse():
    images = _asymmetric()
    out = robustness.transformed(images, "rotate", 90.0).astype(int)
    # bilinear sampling at cos/sin of 90 degrees in float32 lands within rounding of pixels
    np.testing.assert_allclose(out, np.rot90(images, 1, axes=(1, 2)), atol=1)
    assert np.abs(out - np.rot90(images, -1, axes=(1, 2))).max() > 50  # negative control


def test_shrinking_by_half_keeps_a_quarter_of_the_ink():
    images = np.zeros((1, 16, 16, 1), np.uint8)
    images[0, 4:12, 4:12] = 200  # a centred square: shrunk by 2 it stays inside the canvas
    out = robustness.transformed(images, "scale", 0.5)
    # an area-averaging zoom by 1/2 maps total intensity to 1/4 (rounding to uint8 aside)
    assert out.sum() == pytest.approx(images.sum() / 4, rel=0.03)


def test_accuracy_sweep_scores_each_transformed_set():
    images = np.full((4, 8, 8, 1), 100, np.uint8)
    unchanged = lambda x, labels: float(np.mean(x == 100))
    # a zero-filled shift by m of a constant 8x8 image leaves 8 - m of 8 rows/columns
    accs = robustness.accuracy_sweep(unchanged, images, np.zeros(4, np.int32), "shift",
                                     [0, 1, 3])
    assert accs == pytest.approx([1.0, 7 / 8, 5 / 8])


@pytest.mark.parametrize("kind, magnitude, needle", [
    ("flip", 1, "kind must be one of"), ("shift", 1.5, "whole number of pixels"),
    ("scale", 0.0, "scale magnitude must be > 0")])
def test_bad_arguments_are_named(kind, magnitude, needle):
    with pytest.raises(ValueError, match=needle):
        robustness.transformed(_asymmetric(), kind, magnitude)


def test_images_must_be_uint8_nhwc():
    with pytest.raises(ValueError, match="images must be uint8"):
        robustness.transformed(np.zeros((2, 8, 8), np.uint8), "rotate", 10.0)
