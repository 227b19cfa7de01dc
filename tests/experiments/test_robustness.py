"""accuracy_under_transform against a NumPy loop over magnitudes."""

import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax import transforms
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
