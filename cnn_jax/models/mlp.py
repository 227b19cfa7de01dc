"""The lecture's dense network: Flatten -> num_layers x Dense(units, elu) -> Dense(classes)."""

from __future__ import annotations

import flax.linen as nn
import jax

from cnn_jax.layers.conv import activation
from cnn_jax.models.registry import register

# Keras's Dense defaults (Flax's own default kernel init is lecun-normal).
KERAS_KERNEL_INIT = nn.initializers.glorot_uniform()


@register("mlp")
class MLP(nn.Module):
    """Multi-layer perceptron with Keras-default initialisation (glorot-uniform, zero bias).

    Attributes:
      num_layers: hidden Dense layers (0 gives multinomial logistic regression).
      units: width of each hidden layer.
      activation: hidden activation name (``layers.conv.ACTIVATIONS``).
      num_classes: output logits.
      precision: precision of every dot and conv ("default", "high", "highest"; None: JAX's
        default, see ``TrainConfig.precision``).

    ``__call__``: [N, H, W, C] -> (logits [N, num_classes],
    features {"flatten": [N, H*W*C], "dense_1".. : [N, units], "logits"}).
    """

    num_layers: int = 1
    units: int = 512
    activation: str = "elu"
    num_classes: int = 10
    precision: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False):
        if self.num_layers < 0:
            raise ValueError(f"num_layers must be >= 0, got {self.num_layers}")
        act = activation(self.activation)
        h = x.reshape(x.shape[0], -1)
        first = "dense_1" if self.num_layers else "head"
        if not self.is_initializing() and first in self.variables.get("params", {}):
            fan_in = self.variables["params"][first]["kernel"].shape[0]
            if h.shape[1] != fan_in:
                raise ValueError(
                    f"x must have {fan_in} values per example (the input size the MLP was "
                    f"initialised with), got shape {tuple(x.shape)} = {h.shape[1]} values: a "
                    "dense network takes one input size only; for other sizes use a fully "
                    "convolutional model with global pooling (cnn with head='gap')")
        features = {"flatten": h}
        for i in range(self.num_layers):
            h = act(nn.Dense(self.units, kernel_init=KERAS_KERNEL_INIT, precision=self.precision,
                             name=f"dense_{i + 1}")(h))
            features[f"dense_{i + 1}"] = h
        logits = nn.Dense(self.num_classes, kernel_init=KERAS_KERNEL_INIT,
                          precision=self.precision, name="head")(h)
        features["logits"] = logits
        return logits, features
