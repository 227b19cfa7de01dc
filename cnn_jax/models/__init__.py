"""Models chosen by name; each returns ``(logits [N, classes], features {stage: array})``."""

from cnn_jax.models import cnn, mlp  # noqa: F401  (registers "cnn", "mlp")
from cnn_jax.models.registry import get, names, register

__all__ = ["get", "names", "register"]
