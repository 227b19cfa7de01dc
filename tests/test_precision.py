"""``precision`` flows from the config through models and layers to every dot and conv.

On CPU the precision changes no number (XLA:CPU computes float32 at every setting), so these
tests look at the program: the precision recorded on every ``dot_general`` and
``conv_general_dilated`` of a model's forward and backward pass, and in the lowered HLO.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from jax import lax

from cnn_jax import models
from cnn_jax.config import PRECISIONS, TrainConfig
from cnn_jax.training.loop import model_arguments
from tests.test_train_script import TINY, train

CONTRACTIONS = ("dot_general", "conv_general_dilated")
# Small members of every model family; (input size, model kwargs).
SMALL = {
    "mlp": (8, dict(num_layers=2, units=8)),
    "cnn": (12, dict(features=(2, 3), dense_units=(4,))),
    "cnn xla": (8, dict(features=(2,), dense_units=(4,), conv_impl="xla")),
    "lcn": (8, dict(features=(2,), dense_units=(4,))),
    "p4cnn": (8, dict(features=(2, 2))),
    "p4mcnn": (8, dict(features=(2,))),
    "sesn": (8, dict(features=(2, 2), kernel_size=5, scale_span=2)),
}


def contraction_precisions(jaxpr) -> list:
    """The ``precision`` parameter of every dot/conv in ``jaxpr`` and its sub-jaxprs."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in CONTRACTIONS:
            found.append(eqn.params["precision"])
        for value in eqn.params.values():
            for sub in value if isinstance(value, (list, tuple)) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    found += contraction_precisions(inner)
    return found


def forward_and_backward(name: str, precision):
    """Jaxpr of a model's logits and of their gradient w.r.t. the parameters."""
    size, kwargs = SMALL[name]
    model = models.get(name.split()[0], num_classes=3, precision=precision, **kwargs)
    x = jnp.ones((2, size, size, 1))
    params = jax.eval_shape(model.init, jax.random.key(0), x)

    def loss(p):
        return jnp.sum(model.apply(p, x)[0] ** 2)

    return jax.make_jaxpr(jax.value_and_grad(loss))(params).jaxpr


def test_every_registered_model_takes_precision():
    # the package's own models (tests elsewhere register throwaway ones in this process)
    own = [n for n in models.names() if n in {"cnn", "cnn_bn", "lcn", "mlp", "p4cnn", "p4mcnn",
                                               "sesn"}]
    assert len(own) >= 7
    assert [n for n in own if "precision" not in models.arguments(n)] == []


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("precision", ["high", "highest"])
def test_precision_reaches_every_contraction_forward_and_backward(name, precision):
    found = contraction_precisions(forward_and_backward(name, precision))
    expected = (lax.Precision(precision),) * 2
    # each layer's forward contraction and at least one gradient contraction per layer
    assert len(found) >= 4, found
    assert [p for p in found if p != expected] == []


@pytest.mark.parametrize("name", sorted(SMALL))
def test_no_precision_leaves_every_contraction_to_jax(name):
    """The negative control: without ``precision`` (and no global default, which JAX would
    record on every contraction) no contraction is pinned."""
    with jax.default_matmul_precision(None):
        found = contraction_precisions(forward_and_backward(name, None))
    assert found and all(p is None for p in found), found


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_precision_appears_in_the_lowered_hlo(name):
    size, kwargs = SMALL[name]
    x = jnp.ones((2, size, size, 1))

    def hlo(config: TrainConfig) -> str:
        model = models.get(name, num_classes=3, **model_arguments(config))
        params = model.init(jax.random.key(0), x)
        return jax.jit(model.apply).lower(params, x).as_text()

    base = TrainConfig(model=name, model_kwargs=kwargs)
    with jax.default_matmul_precision(None):  # ignore $JAX_DEFAULT_MATMUL_PRECISION
        default = hlo(base)
    highest = hlo(base.replace(precision="highest"))
    assert "precision = [HIGHEST, HIGHEST]" in highest
    assert "precision = [DEFAULT, DEFAULT]" not in highest
    assert "HIGHEST" not in default and "HIGH," not in default


def test_model_arguments_adds_precision_unless_default():
    config = TrainConfig(model="mlp", model_kwargs={"units": 8})
    assert model_arguments(config) == {"units": 8}
    assert model_arguments(config.replace(precision="high")) == {"units": 8, "precision": "high"}
    with pytest.raises(ValueError, match="set it in one place"):
        model_arguments(config.replace(precision="high", model_kwargs={"precision": "high"}))


def test_precision_for_a_model_without_it_is_refused(monkeypatch):
    class Bare(nn.Module):
        @nn.compact
        def __call__(self, x, *, train=False):
            return nn.Dense(2)(x.reshape(x.shape[0], -1)), {}

    from cnn_jax.models import registry

    monkeypatch.setitem(registry._MODELS, "bare", Bare)
    assert model_arguments(TrainConfig(model="bare")) == {}  # "default" needs nothing
    with pytest.raises(ValueError, match="precision='highest': model 'bare' has no precision"):
        model_arguments(TrainConfig(model="bare", precision="highest"))


def test_config_refuses_an_unknown_precision():
    assert PRECISIONS == ("default", "high", "highest")
    with pytest.raises(ValueError, match="precision='bf16': must be one of"):
        TrainConfig(precision="bf16")


def test_train_script_refuses_an_unknown_precision(tmp_path):
    proc = train(*TINY, f"--workdir={tmp_path}", "--precision=bf16", check=False)
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith("train.py: error: --precision=bf16") and "highest" in lines[0]
    assert not (tmp_path / "config.json").exists()


@pytest.mark.skipif(jax.default_backend() != "gpu",
                    reason="needs a GPU (make gpu-check): on CPU every precision computes float32")
def test_on_a_gpu_default_precision_is_tf32_and_highest_is_float32():
    """A float32 product against float64: "highest" within float32 rounding, "default" at TF32's
    (10 mantissa bits, relative error ~1e-3), which is why the equivariance tests pin "highest"."""
    import numpy as np

    x, y = jax.random.normal(jax.random.key(0), (2, 256, 256), jnp.float32)
    exact = np.asarray(x, np.float64) @ np.asarray(y, np.float64)

    def error(precision):
        with jax.default_matmul_precision(precision):
            got = np.asarray(jax.jit(jnp.matmul)(x, y), np.float64)
        return np.abs(got - exact).max() / np.abs(exact).max()

    highest, default = error("highest"), error("default")
    assert highest < 256 * 2.0**-24, (highest, default)  # float32: n products, each rounded once
    assert default > 2.0**-14, (highest, default)  # TF32 rounds the inputs to 2**-11 relative
