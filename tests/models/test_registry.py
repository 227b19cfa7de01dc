"""The model registry: importing register, the contract checks, user modules."""

import os
import subprocess
import sys

import flax.linen as nn
import pytest

from cnn_jax import models
from cnn_jax.config import ConfigError
from cnn_jax.models import register

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_register_imports_first_thing_in_a_fresh_interpreter_and_from_a_user_module(tmp_path):
    # A user module that imports register while cnn_jax.models is still being imported (the
    # circular case) and one imported afterwards through import_module.
    (tmp_path / "user_models.py").write_text(
        "from cnn_jax.models import register\n"
        "import flax.linen as nn\n"
        "@register('user_net')\n"
        "class UserNet(nn.Module):\n"
        "    num_classes: int = 10\n")
    code = ("from cnn_jax.models import register, names, import_module\n"
            "import_module('user_models')\n"
            "print(' '.join(names()))\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout.split()
    assert "user_net" in out and "cnn_bn" in out


CIRCULAR = """
import builtins
real_import = builtins.__import__

def hooked(name, globals=None, locals=None, fromlist=(), level=0):
    # A model module inside the package importing register from the package itself.
    if (globals or {}).get("__name__") == "cnn_jax.models.cnn" and "registry" in name:
        from cnn_jax.models import register  # noqa: F401
    return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = hooked
import cnn_jax.models
print("ok")
"""


def test_register_can_be_imported_from_the_package_while_it_initialises():
    env = {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", CIRCULAR], capture_output=True, text=True,
                          env=env)
    assert proc.stdout.strip() == "ok", proc.stderr[-1500:]


def test_import_module_failure_is_a_config_error():
    with pytest.raises(ConfigError, match="model_module='no_such_module_xyz': cannot be "
                                          "imported .ModuleNotFoundError"):
        models.import_module("no_such_module_xyz")


def test_registering_a_name_twice_is_an_error_unless_it_is_the_same_definition():
    class A(nn.Module):
        num_classes: int = 10

    register("test_registry_a")(A)
    register("test_registry_a")(A)  # a re-imported module defines it again: fine
    with pytest.raises(ValueError, match="registered twice"):
        register("test_registry_a")(type("B", (nn.Module,), {"__annotations__": {}}))
    with pytest.raises(ValueError, match="registered twice"):
        register("cnn")(A)


@pytest.mark.parametrize("kwargs, field, problem", [
    ({"widht": 8}, "model_kwargs.widht", "model 'cnn' has no argument 'widht'; its arguments: "
                                         "features, kernel_size,"),
    ({"features": "abc"}, "model_kwargs.features", "must be of type Sequence[int]"),
    ({"features": (4.5,)}, "model_kwargs.features", "must be of type Sequence[int]"),
    ({"kernel_size": (3, "x")}, "model_kwargs.kernel_size", "must be of type int | Sequence"),
    ({"pool_window": True}, "model_kwargs.pool_window", "must be of type int"),
    ({"num_classes": 3}, "model_kwargs.num_classes", "is set from the dataset"),
    # range errors found by tracing abstractly, blamed on the argument that fails alone
    ({"features": (4,), "kernel_size": 40}, "model_kwargs.kernel_size",
     "model 'cnn' cannot be built with it: ValueError: kernel of size (40, 40)"),
    ({"features": (4,), "pool": "nope"}, "model_kwargs.pool",
     "model 'cnn' cannot be built with it: ValueError: pool must be"),
])
def test_check_names_the_argument_and_what_is_allowed(kwargs, field, problem):
    with pytest.raises(ConfigError) as e:
        models.check("cnn", kwargs, input_shape=(28, 28, 1))
    assert e.value.field == field and e.value.problem.startswith(problem), e.value.problem


def test_check_accepts_good_arguments_and_refuses_unknown_models_and_broken_contracts():
    model = models.check("cnn_bn", {"features": (4, 8), "dense_units": ()},
                         input_shape=(28, 28, 1), num_classes=3)
    assert model.batch_norm and model.num_classes == 3
    with pytest.raises(ConfigError, match="model='nope': unknown model; registered: cnn, cnn_bn"):
        models.check("nope", {})

    @register("test_registry_bad_contract")
    class LogitsOnly(nn.Module):
        num_classes: int = 10

        @nn.compact
        def __call__(self, x, *, train=False):
            return nn.Dense(self.num_classes)(x.reshape(x.shape[0], -1))

    with pytest.raises(ConfigError, match=r"must return \(logits \[N, 10\], features dict\)"):
        models.check("test_registry_bad_contract", {}, input_shape=(4, 4, 1))
