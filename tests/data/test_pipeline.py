"""On-device batching: each example once per epoch, partial batch included."""

import re

import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from cnn_jax.data import pipeline
from tests.numerics import assert_close


@pytest.mark.parametrize("n, b", [(10, 4), (12, 4), (3, 8), (60000, 256)])
def test_every_example_exactly_once_per_epoch(n, b, key):
    idx, mask = jax.jit(pipeline.epoch_batches, static_argnums=(1, 2))(key, n, b)
    assert idx.shape == mask.shape == (-(-n // b), b)
    seen = np.asarray(idx)[np.asarray(mask)]
    np.testing.assert_array_equal(np.sort(seen), np.arange(n))
    assert int(mask.sum()) == n
    if n % b:  # only the tail of the last batch is padding
        assert mask[:-1].all() and int(mask[-1].sum()) == n % b


def test_lecture_epoch_has_235_steps_and_a_partial_batch_of_96():
    idx, mask = pipeline.epoch_batches(None, 60000, 256)
    assert idx.shape[0] == pipeline.num_steps(60000, 256) == 235
    assert int(mask[-1].sum()) == 60000 - 234 * 256 == 96


def test_drop_remainder_drops_only_the_tail(key):
    idx, mask = pipeline.epoch_batches(key, 10, 4, drop_remainder=True)
    assert idx.shape == (2, 4) and bool(mask.all())
    assert len(set(np.asarray(idx).ravel().tolist())) == 8


def test_permutation_depends_on_key_and_is_deterministic(key):
    a, _ = pipeline.epoch_batches(key, 100, 10)
    b, _ = pipeline.epoch_batches(key, 100, 10)
    c, _ = pipeline.epoch_batches(jax.random.fold_in(key, 1), 100, 10)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_normalize_and_to_device():
    images = np.array([0, 51, 255], np.uint8).reshape(3, 1, 1, 1)
    x, y = pipeline.to_device(images, np.array([0, 1, 2]))
    # x / 255 (a division, or a reciprocal and a product), then - mean and / std
    assert_close(pipeline.normalize(x).ravel(), [0.0, 0.2, 1.0], ops=2)
    assert_close(pipeline.normalize(x, mean=0.2, std=0.5).ravel(), [-0.4, 0.0, 1.6], ops=4)
    assert y.dtype == np.int32


@pytest.mark.parametrize(
    "call, match",
    [(lambda: pipeline.num_steps(10, 0), "batch_size must be positive, got 0"),
     (lambda: pipeline.num_steps(0, 4), "num_examples must be positive, got 0"),
     (lambda: pipeline.num_steps(3, 8, drop_remainder=True),
      "drop_remainder=True with batch_size=8 > num_examples=3 leaves no batch"),
     (lambda: pipeline.to_device(np.zeros((2, 3, 3), np.uint8), np.zeros(2)),
      "images must be uint8 [N, H, W, C], got uint8 (2, 3, 3)"),
     (lambda: pipeline.to_device(np.zeros((2, 3, 3, 1), np.uint8), np.zeros(3)),
      "labels must be [N] with N=2, got (3,)")],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=f"^{re.escape(match)}$"):
        call()


@pytest.mark.parametrize("n, b, drop, steps", [(1, 1, False, 1), (5, 1, True, 5), (7, 2, False, 4),
                                               (7, 2, True, 3), (8, 2, True, 4)])
def test_num_steps_by_hand(n, b, drop, steps):
    assert pipeline.num_steps(n, b, drop_remainder=drop) == steps


def test_to_device_places_both_arrays_with_the_given_sharding():
    mesh = Mesh(np.array(jax.devices()[:2]), ("batch",))
    sharding = NamedSharding(mesh, PartitionSpec("batch"))
    x, y = pipeline.to_device(np.zeros((4, 2, 2, 1), np.uint8), np.arange(4), sharding)
    assert x.sharding == sharding and y.sharding == sharding
    assert len(x.addressable_shards) == len(y.addressable_shards) == 2
