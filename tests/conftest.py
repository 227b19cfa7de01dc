"""Shared test set-up: host devices, a fresh PRNG key per test, NaN checks, clean JAX config."""

import os

# Four CPU devices so that sharding tests run on one machine; must precede JAX's backend start.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    ).strip()

# One persistent XLA compilation cache per test session, shared by the xdist workers (they
# inherit this environment) and by the scripts the tests start: many of those compile the
# same programs again (the quick experiments, resumed and rerun runs). Removed at the end.
_OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _OWN_CACHE:
    import tempfile

    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="cnn-jax-xla-cache-")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

import shutil  # noqa: E402
import zlib  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

settings.register_profile("default", deadline=None, max_examples=30, derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# Global JAX options a test may change; each is put back after every test.
_JAX_OPTIONS = (
    "jax_debug_nans",
    "jax_debug_infs",
    "jax_disable_jit",
    "jax_enable_x64",
    "jax_numpy_rank_promotion",
    "jax_default_matmul_precision",
)


def pytest_unconfigure(config):
    """Removes the session's compilation cache (in the process that made it)."""
    if _OWN_CACHE and not hasattr(config, "workerinput"):
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


@pytest.fixture(autouse=True)
def _jax_config_guard():
    """Turns on NaN checks for the test, then restores every option in _JAX_OPTIONS."""
    saved = {name: getattr(jax.config, name) for name in _JAX_OPTIONS}
    jax.config.update("jax_debug_nans", True)
    yield
    for name, value in saved.items():
        jax.config.update(name, value)


@pytest.fixture
def key(request):
    """A PRNG key unique to the test (derived from its node id), the same on every run."""
    return jax.random.key(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture(params=["jit", "nojit"])
def variant(request):
    """Runs a function as is, or under ``jax.jit`` (bind static arguments with a lambda)."""
    return jax.jit if request.param == "jit" else (lambda f: f)
