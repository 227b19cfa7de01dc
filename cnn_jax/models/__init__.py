"""Models chosen by name; each returns ``(logits [N, classes], features {stage: array})``."""
# ruff: noqa: I001  (the registry must come first, see below)

# The registry first: a model module (also a user's, via --model_module) may then import
# ``register`` from this package while the package itself is still being imported.
from cnn_jax.models.registry import arguments, check, get, import_module, names, register
from cnn_jax.models import cnn, gcnn, lcn, mlp, sesn  # noqa: F401  (registers the models)

__all__ = ["arguments", "check", "get", "import_module", "names", "register"]
