"""Models by name. Every registered model maps [N, H, W, C] floats to ``(logits, features)``."""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register(name: str):
    """Class or factory decorator: ``@register("mlp")`` makes ``get("mlp", ...)`` build it."""

    def wrap(factory):
        if name in _MODELS:
            raise ValueError(f"model name {name!r} is registered twice")
        _MODELS[name] = factory
        return factory

    return wrap


def get(name: str, **kwargs) -> nn.Module:
    """Builds the model registered as ``name`` with its keyword hyper-parameters."""
    if name not in _MODELS:
        raise ValueError(f"model must be one of {sorted(_MODELS)}, got {name!r}")
    return _MODELS[name](**kwargs)


def names() -> list[str]:
    """The registered model names, sorted."""
    return sorted(_MODELS)
