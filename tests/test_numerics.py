"""The tolerance helper: its bound is the stated formula, and it rejects what it should."""

import numpy as np
import pytest

from tests.numerics import assert_close, eps, tolerance


def test_bound_is_ops_times_eps_times_scale():
    assert eps(np.float32) == 2.0**-23 and eps(np.float64) == 2.0**-52
    assert tolerance(np.float32, 10, 4.0) == 10 * 2.0**-23 * 4.0
    assert tolerance(np.float64, 3) == 3 * 2.0**-52


def test_accepts_rounding_and_rejects_an_error_one_step_larger():
    desired = np.float32([1.0, -2.0, 0.5, 0.0])
    one_ulp = np.nextafter(desired, np.float32(np.inf))
    assert assert_close(one_ulp, desired, ops=1) == 2.0**-23 * 2.0  # scale = max |desired|
    bound = tolerance(np.float32, 4, 2.0)
    assert_close(desired + np.float32([0, 0, 0, 0.9 * bound]), desired, ops=4)  # floor at 0
    with pytest.raises(AssertionError, match=r"4 ops x eps\(float32\) x scale 2"):
        assert_close(desired + np.float32([0, 0, 0, 1.5 * bound]), desired, ops=4)


def test_working_dtype_is_the_less_precise_side():
    desired = np.array([1.0, 3.0])  # float64 reference
    assert_close(np.float32(desired) * np.float32(1 + 2**-22), desired, ops=2)
    with pytest.raises(AssertionError):  # in float64 the same residue is far out of bound
        assert_close(desired * (1 + 2**-22), desired, ops=2)


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="desired is all zeros"):
        assert_close(np.zeros(3, np.float32), np.zeros(3, np.float32), ops=1)
    assert_close(np.full(3, 1e-7, np.float32), np.zeros(3, np.float32), ops=1, scale=1.0)
    with pytest.raises(ValueError, match="neither side is a float"):
        assert_close(np.arange(3), np.arange(3), ops=1)
    with pytest.raises(ValueError, match="ops must be > 0"):
        tolerance(np.float32, 0)
    with pytest.raises(ValueError, match="scale must be >= 0"):
        tolerance(np.float32, 1, -1.0)
