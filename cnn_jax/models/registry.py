"""Models by name. Every registered model maps [N, H, W, C] floats to ``(logits, features)``."""

from __future__ import annotations

import dataclasses
import inspect
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


def arguments(name: str) -> list[str]:
    """The keyword hyper-parameters of the model registered as ``name`` (sorted)."""
    if name not in _MODELS:
        raise ValueError(f"model must be one of {sorted(_MODELS)}, got {name!r}")
    factory = _MODELS[name]
    if dataclasses.is_dataclass(factory):  # a Flax module class
        found = [f.name for f in dataclasses.fields(factory) if f.init]
    else:  # a function or a partial of a module class
        found = list(inspect.signature(factory).parameters)
    return sorted(set(found) - {"parent", "name"})  # Flax's own, not hyper-parameters
