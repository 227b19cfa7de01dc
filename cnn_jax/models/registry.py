"""Models by name. Every registered model maps [N, H, W, C] floats to ``(logits, features)``."""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import importlib
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax.config import ConfigError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register(name: str):
    """Class or factory decorator: ``@register("name")`` makes ``get("name", ...)`` build it.

    The model contract (what training, evaluation, checkpoints and the equivariance tools
    rely on):

    - A ``flax.linen.Module`` class, or a function returning one, whose keyword arguments are
      its hyper-parameters. It takes ``num_classes`` (the dataset sets it). Other arguments
      come from ``--model_arg=name=value`` / ``TrainConfig.model_kwargs``: JSON-representable
      values (they are saved in ``config.json``); sequences arrive as tuples.
    - ``__call__(x, *, train=False)``: ``x`` float32 [N, H, W, C] (scaled to [0, 1], or
      standardised). ``train=True`` in training steps: dropout draws from the ``"dropout"``
      rng, BatchNorm uses batch statistics. It may also take ``mask``: bool [N], ``False``
      for the padding of a partial batch; pass it on to batch statistics (``nn.BatchNorm``'s
      ``mask``) so that padding does not enter them.
    - Returns ``(logits [N, num_classes], features)``, ``features`` a dict of stage name ->
      array (the per-stage maps the equivariance tools measure; may be empty).
    - Collections other than ``"params"`` (e.g. BatchNorm's ``"batch_stats"``) are created by
      ``init``, updated by every training step and used as they are in evaluation.

    Registering a name twice is an error, except for the same class or function defined
    again (a re-imported module).

    A model of your own, in a module that ``--model_module=MODULE`` imports:

    >>> import flax.linen as nn
    >>> from cnn_jax.models import get, register
    >>> @register("tiny_bn")
    ... class TinyBN(nn.Module):
    ...     width: int = 8
    ...     num_classes: int = 10
    ...     @nn.compact
    ...     def __call__(self, x, *, train=False, mask=None):
    ...         h = nn.Conv(self.width, (3, 3))(x)
    ...         m = None if mask is None else mask[:, None, None, None]
    ...         h = nn.relu(nn.BatchNorm(use_running_average=not train)(h, mask=m))
    ...         return nn.Dense(self.num_classes)(h.mean(axis=(1, 2))), {"conv": h}
    >>> model = get("tiny_bn", width=4, num_classes=3)
    >>> variables = model.init(jax.random.key(0), jnp.zeros((2, 8, 8, 1)))
    >>> sorted(variables), model.apply(variables, jnp.ones((2, 8, 8, 1)))[0].shape
    (['batch_stats', 'params'], (2, 3))
    """

    def wrap(factory):
        old = _MODELS.get(name)
        if old is not None and _identity(old) != _identity(factory):
            raise ValueError(f"model name {name!r} is registered twice")
        _MODELS[name] = factory
        return factory

    return wrap


def _identity(factory) -> tuple[str, str]:
    return (getattr(factory, "__module__", ""), getattr(factory, "__qualname__", repr(factory)))


def get(name: str, **kwargs) -> nn.Module:
    """Builds the model registered as ``name`` with its keyword hyper-parameters."""
    if name not in _MODELS:
        raise ValueError(f"model must be one of {sorted(_MODELS)}, got {name!r}")
    return _MODELS[name](**kwargs)


def names() -> list[str]:
    """The registered model names, sorted."""
    return sorted(_MODELS)


def import_module(module: str | None) -> None:
    """Imports ``module`` (``"pkg.mod"``) so that the models it registers exist.

    Raises:
      ConfigError: (field ``model_module``) it cannot be imported.
    """
    if module is None:
        return
    try:
        importlib.import_module(module)
    except Exception as e:  # any failure of a user module is reported as its problem
        raise ConfigError("model_module", module, f"cannot be imported ({type(e).__name__}: "
                          f"{e}); give an importable module (on PYTHONPATH) that registers "
                          "models with cnn_jax.models.register") from None


def arguments(name: str) -> dict[str, Any]:
    """The hyper-parameters of model ``name`` and their types (``Any`` where unknown),
    ``num_classes`` excluded."""
    factory = _MODELS[name]
    target = factory.func if isinstance(factory, functools.partial) else factory
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # annotations that do not resolve: check names, not types
        hints = {}
    if dataclasses.is_dataclass(target):
        args = [f.name for f in dataclasses.fields(target) if f.init]
    else:
        args = list(inspect.signature(target).parameters)
    return {a: hints.get(a, Any) for a in args if a not in ("parent", "name", "num_classes")}


def check(name: str, kwargs: Mapping[str, Any], *, input_shape: tuple[int, ...] | None = None,
          num_classes: int = 10) -> nn.Module:
    """Builds model ``name`` and, given ``input_shape`` (H, W, C), traces it abstractly
    (``jax.eval_shape``: no compiling, no memory) to check its arguments and its outputs.

    Returns:
      The model.

    Raises:
      ConfigError: naming ``model`` or ``model_kwargs.ARG`` and what is allowed.
    """
    if name not in _MODELS:
        raise ConfigError("model", name, f"unknown model; registered: {', '.join(names())} "
                          "(add your own with --model_module)")
    allowed = arguments(name)
    for key, value in kwargs.items():
        if key == "num_classes":
            raise ConfigError("model_kwargs.num_classes", value, "is set from the dataset")
        if key not in allowed:
            raise ConfigError(f"model_kwargs.{key}", value, f"model {name!r} has no argument "
                              f"{key!r}; its arguments: {', '.join(allowed)}")
        if not _matches(value, allowed[key]):
            raise ConfigError(f"model_kwargs.{key}", value,
                              f"must be of type {_type_name(allowed[key])}")
    problem = _build_problem(name, kwargs, input_shape, num_classes)
    if problem is not None:
        for key, value in kwargs.items():  # blame the first argument that fails on its own
            if _build_problem(name, {key: value}, input_shape, num_classes) is not None:
                raise ConfigError(f"model_kwargs.{key}", value, problem)
        raise ConfigError("model", name, problem)
    return get(name, num_classes=num_classes, **kwargs)


def _build_problem(name, kwargs, input_shape, num_classes) -> str | None:
    try:
        model = get(name, num_classes=num_classes, **kwargs)
        if input_shape is None:
            return None
        x = jax.ShapeDtypeStruct((2, *input_shape), jnp.float32)
        variables = jax.eval_shape(model.init, jax.random.key(0), x)
        out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
    except Exception as e:  # any failure to build or trace is the arguments' problem
        return f"model {name!r} cannot be built with it: {type(e).__name__}: {e}".split("\n")[0]
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], Mapping)
            and getattr(out[0], "shape", None) == (2, num_classes)):
        return (f"model {name!r} must return (logits [N, {num_classes}], features dict), "
                f"returned {jax.tree.map(lambda a: a.shape, out)}")
    return None


def _matches(value: Any, hint: Any) -> bool:
    """Whether a JSON-like ``value`` fits the type ``hint`` (unknown kinds of hint: yes)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint in (int, float):
        kinds = (int,) if hint is int else (int, float)
        return isinstance(value, kinds) and not isinstance(value, bool)
    if origin in (collections.abc.Sequence, list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(args) == len(value) and all(map(_matches, value, args))
        return all(_matches(v, args[0] if args else Any) for v in value)
    if isinstance(hint, type) and origin is None:
        return isinstance(value, hint)
    return True


def _type_name(hint: Any) -> str:
    text = hint.__name__ if isinstance(hint, type) else str(hint)
    return text.replace("collections.abc.", "").replace("typing.", "")
