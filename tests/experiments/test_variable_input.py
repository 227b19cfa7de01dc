"""Experiment 9: canvases, the MLP's refusal, and the quick variant."""

import numpy as np
import pytest

from cnn_jax.experiments import variable_input as vi
from tests.experiments.quick import run_quick
from tests.numerics import assert_close


def test_centred_places_the_image_in_the_middle():
    images = np.arange(2 * 2 * 3, dtype=np.uint8).reshape(1, 2, 3, 2)
    out = vi.centred(images, 6)
    assert out.shape == (1, 6, 6, 2)
    np.testing.assert_array_equal(out[0, 2:4, 1:4], images[0])
    assert out.sum() == images.sum()
    with pytest.raises(ValueError, match="size must be"):
        vi.centred(images, 2)


def test_mlp_refuses_another_input_size_with_a_clear_error():
    message = vi.mlp_refusal((28, 28, 1), 56)
    assert "x must have 784 values per example" in message and "(1, 56, 56, 1)" in message


def test_quick_variant(tmp_path):
    record, _ = run_quick("variable_input", tmp_path)
    n = record["numbers"]
    for key in ("gap_accuracy_28_original", "gmp_accuracy_36_centred", "gap_accuracy_42_random"):
        assert 0 <= n[key] <= 1
    assert "x must have 784 values" in n["mlp_error"]


def test_gmp_head_is_the_spatial_maximum_at_any_size():
    import jax

    from cnn_jax import models

    model = models.get("cnn", features=(3,), padding="same", head="gmp", num_classes=2)
    params = jax.jit(model.init)(jax.random.key(0), np.zeros((1, 8, 8, 1), np.float32))
    for size in (8, 13):
        x = np.random.default_rng(size).random((2, size, size, 1)).astype(np.float32)
        logits, feats = model.apply(params, x)
        pooled = np.asarray(feats["pool_1"]).max(axis=(1, 2))
        head = params["params"]["head"]
        # float32 dot of 3 terms and the bias on each side, on sums of |terms| up to
        # |pooled| @ |kernel| + |bias| (tests/numerics.py)
        scale = float((np.abs(pooled) @ np.abs(head["kernel"]) + np.abs(head["bias"])).max())
        assert_close(logits, pooled @ head["kernel"] + head["bias"], ops=2 * 4, scale=scale)
