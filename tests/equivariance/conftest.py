"""The equivariance tests run at "highest" matmul precision.

Their exactness bounds (``tests.numerics.tolerance``) assume float32 products. On CPU that is
what every precision computes, but a GPU's "default" is TF32 (10 mantissa bits) and a TPU's
one bf16 pass (8 bits), which would break the bounds by orders of magnitude. Every dot and
conv whose precision is left to JAX (``precision=None``, the layers' and models' default)
takes the pinned value.
"""

import jax
import pytest


@pytest.fixture(autouse=True)
def _highest_precision():
    with jax.default_matmul_precision("highest"):
        yield
