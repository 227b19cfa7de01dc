"""Derived sets: each example transformed by its recorded parameter, deterministic by seed."""

import re

import numpy as np
import pytest
import scipy.ndimage as ndi

from cnn_jax import data
from cnn_jax.data import derived
from cnn_jax.data.dataset import select


@pytest.fixture(scope="module")
def bars():
    return data.load("synthetic_bars", "test[:40]")


def white(n: int, size: int = 28) -> data.Dataset:
    """``n`` all-white images: their zoomed footprint shows the zoom factor."""
    info = data.DatasetInfo("white", 1, ("white",), (size, size, 1))
    return data.Dataset(np.full((n, size, size, 1), 255, np.uint8), np.zeros(n, np.int32), info,
                        "test")


# ----------------------------------------------------------------------------- rotated


def test_rotation_by_90_and_0_degrees_is_exact(bars):
    np.testing.assert_array_equal(derived.rotated(bars, angles=90.0).images,
                                  np.rot90(bars.images, axes=(1, 2)))
    np.testing.assert_array_equal(derived.rotated(bars, angles=0.0).images, bars.images)


def test_each_example_is_rotated_by_its_recorded_angle(bars):
    out = derived.rotated(bars, angles=(-180.0, 180.0), seed=1)
    angle = out.params["angle"]
    assert angle.dtype == np.float32 and angle.shape == (40,)
    assert (angle >= -180).all() and (angle < 180).all() and np.ptp(angle) > 180
    for image, a, result in zip(bars.images[..., 0], angle, out.images[..., 0], strict=True):
        # scipy's counter-clockwise bilinear rotation about the centre, zeros outside the grid
        ref = ndi.rotate(image.astype(np.float64), float(a), reshape=False, order=1,
                         mode="grid-constant")
        np.testing.assert_allclose(result, np.clip(np.rint(ref), 0, 255), atol=1)
    np.testing.assert_array_equal(out.labels, bars.labels)
    assert out.info.name == "synthetic_bars+rotated" and out.info.image_shape == (28, 28, 1)
    assert out.source.endswith("|rotated(angles=(-180.0, 180.0), seed=1)")


def test_same_seed_same_set_other_seed_other_set(bars):
    a = derived.rotated(bars, angles=(0.0, 360.0), seed=7)
    b = derived.rotated(bars, angles=(0.0, 360.0), seed=7)
    c = derived.rotated(bars, angles=(0.0, 360.0), seed=8)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.params["angle"], b.params["angle"])
    assert not np.array_equal(a.images, c.images)
    assert not np.array_equal(a.params["angle"], c.params["angle"])


def test_chunked_transform_pairs_each_image_with_its_parameter(bars, monkeypatch):
    whole = derived.rotated(bars, angles=(0.0, 360.0), seed=2)
    monkeypatch.setattr(derived, "_CHUNK", 7)  # 40 = 5 full chunks + a padded one of 5
    chunked = derived.rotated(bars, angles=(0.0, 360.0), seed=2)
    np.testing.assert_array_equal(chunked.images, whole.images)


# ----------------------------------------------------------------------------- scaled


def test_scale_by_one_is_the_identity(bars):
    np.testing.assert_array_equal(derived.scaled(bars, factors=1.0).images, bars.images)


def test_scale_by_half_matches_a_hand_computed_antialiased_zoom(bars):
    # Output pixel i reads input position 2 i - 13.5 through a triangle of half-width 2:
    # inputs 2i-15 .. 2i-12 with weights 1, 3, 3, 1 (/ 8), zero outside the image.
    resample = np.zeros((28, 28))
    for i in range(28):
        for k, weight in zip(range(2 * i - 15, 2 * i - 11), (1, 3, 3, 1), strict=True):
            if 0 <= k < 28:
                resample[i, k] = weight / 8
    expected = np.einsum("ik,nklc,jl->nijc", resample, bars.images.astype(np.float64), resample)
    out = derived.scaled(bars, factors=0.5)
    np.testing.assert_allclose(out.images, np.clip(np.rint(expected), 0, 255), atol=1)
    np.testing.assert_array_equal(out.params["factor"], np.full(40, 0.5, np.float32))


def test_random_scales_shrink_each_image_by_its_factor():
    out = derived.scaled(white(30), factors=(0.3, 1.0), seed=3)
    factor = out.params["factor"]
    assert (factor >= 0.3).all() and (factor < 1.0).all()
    for image, f in zip(out.images[..., 0], factor, strict=True):
        footprint = image.astype(np.float64).sum() / 255  # area covered, in pixels
        assert footprint == pytest.approx((28 * f) ** 2, rel=0.08)
        assert image[13:15, 13:15].min() == 255  # the centre stays covered
        if f < 0.95:
            assert not image[0].any()  # the top row is uncovered


@pytest.mark.parametrize("factors", [0.0, -1.0, (0.0, 1.0), (1.0, 0.5), "big", (0.3,),
                                     float("nan")])
def test_bad_factors_are_rejected(bars, factors):
    with pytest.raises(ValueError, match=r"factors must be .*got"):
        derived.scaled(bars, factors=factors)


# ----------------------------------------------------------------------------- shifted


def test_each_image_sits_unchanged_at_its_recorded_position(bars):
    out = derived.shifted(bars, canvas=(40, 36), seed=4)
    dy, dx = out.params["dy"], out.params["dx"]
    assert out.images.shape == (40, 40, 36, 1) and out.info.image_shape == (40, 36, 1)
    assert dy.dtype == np.int32 and dy.min() >= 0 and dy.max() <= 12 and dx.max() <= 8
    for image, canvas, i, j in zip(bars.images, out.images, dy, dx, strict=True):
        np.testing.assert_array_equal(canvas[i:i + 28, j:j + 28], image)
        rest = canvas.copy()
        rest[i:i + 28, j:j + 28] = 0
        assert not rest.any()


def test_shift_positions_cover_the_canvas_uniformly():
    out = derived.shifted(white(2000, size=4), canvas=7, seed=5)
    for offsets in (out.params["dy"], out.params["dx"]):
        counts = np.bincount(offsets, minlength=4)
        assert len(counts) == 4 and counts.min() > 400  # 500 expected for each of 0..3


def test_canvas_of_the_image_size_is_the_identity(bars):
    out = derived.shifted(bars, canvas=28)
    np.testing.assert_array_equal(out.images, bars.images)
    assert not out.params["dy"].any() and not out.params["dx"].any()


@pytest.mark.parametrize("canvas", [27, (40, 20), (40,), 40.0, "40"])
def test_bad_canvas_is_rejected(bars, canvas):
    with pytest.raises(ValueError, match="canvas must be .*got " + re.escape(repr(canvas))):
        derived.shifted(bars, canvas=canvas)


# ----------------------------------------------------------------------------- composing


def test_derived_sets_compose_and_keep_all_parameters(bars):
    out = derived.shifted(derived.rotated(bars, angles=(0.0, 90.0)), canvas=32, seed=1)
    assert set(out.params) == {"angle", "dy", "dx"}
    assert out.info.name == "synthetic_bars+rotated+shifted"
    with pytest.raises(ValueError, match=r"already records params \['angle'\]"):
        derived.rotated(derived.rotated(bars), angles=3.0)


def test_params_follow_a_later_selection(bars):
    out = derived.rotated(bars, angles=(0.0, 90.0))
    picked = select(out, np.array([5, 1, 2]))
    np.testing.assert_array_equal(picked.params["angle"], out.params["angle"][[5, 1, 2]])
    np.testing.assert_array_equal(picked.images, out.images[[5, 1, 2]])
    np.testing.assert_array_equal(select(out, slice(3, 6)).params["angle"],
                                  out.params["angle"][3:6])
