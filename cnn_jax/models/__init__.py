"""Models chosen by name; each returns ``(logits [N, classes], features {stage: array})``."""

from cnn_jax.models import cnn, gcnn, lcn, mlp, sesn  # noqa: F401  (register the models)
from cnn_jax.models.registry import arguments, get, names, register

__all__ = ["arguments", "get", "names", "register"]
