"""``check_config``: everything about a ``TrainConfig`` that can be checked before any data is
loaded or any program compiled."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import optax

from cnn_jax import models
from cnn_jax.config import ConfigError, TrainConfig
from cnn_jax.training.early_stopping import EarlyStopping
from cnn_jax.training.steps import make_optimizer

__all__ = ["check_config"]


def check_config(config: TrainConfig) -> None:
    """Checks what the dataclass itself cannot: the model module, the dataset name and
    folder, the model and its arguments (built and traced abstractly when the dataset's
    image shape is known without loading it), the optimizer and its arguments, early
    stopping's direction, and the number of devices.

    Raises:
      ConfigError: the first bad field (``field`` names it, e.g. ``model_kwargs.features``).
    """
    from cnn_jax import data  # pulls in TFDS

    models.import_module(config.model_module)
    try:
        data.check_name(config.dataset)
    except ValueError as e:
        raise ConfigError("dataset", config.dataset, str(e)) from None
    if config.data_dir is not None and not os.path.isdir(config.data_dir):
        raise ConfigError("data_dir", config.data_dir, "no such folder; give a folder holding "
                          "IDX files or a TFDS-prepared copy, or leave it unset")
    from cnn_jax.training.loop import model_arguments

    try:
        kwargs = model_arguments(config)
    except ValueError as e:
        raise ConfigError("precision", config.precision, str(e)) from None
    info = data.known_info(config.dataset)
    models.check(config.model, kwargs,
                 input_shape=None if info is None else info.image_shape,
                 num_classes=10 if info is None else info.num_classes)
    _check_optimizer(config)
    if config.early_stopping is not None:
        try:
            EarlyStopping(config.early_stopping)
        except ValueError as e:
            raise ConfigError("early_stopping.mode", config.early_stopping.mode, str(e)) from None
    if config.num_devices > jax.device_count():
        raise ConfigError("num_devices", config.num_devices, f"must be at most the "
                          f"{jax.device_count()} device(s) found (0: use all)")


def _check_optimizer(config: TrainConfig) -> None:
    """Builds the optimizer and runs its init and update abstractly on a tiny tree."""

    def problem(kwargs) -> str | None:
        try:
            tx = make_optimizer(config.optimizer, config.learning_rate, **kwargs)
            tree = {"w": jax.ShapeDtypeStruct((2,), jnp.float32)}
            jax.eval_shape(lambda g: tx.update(g, tx.init(g), g), tree)
        except Exception as e:  # any failure to build or trace is the arguments' problem
            return f"{type(e).__name__}: {e}".split("\n")[0]
        return None

    if config.optimizer != "keras_adam" and not callable(getattr(optax, config.optimizer, None)):
        raise ConfigError("optimizer", config.optimizer, "not an optax optimizer nor keras_adam; "
                          "e.g. adam, adamw, sgd, rmsprop, lion (any optax.NAME(learning_rate, "
                          "...)), keras_adam (Keras's exact Adam)")
    if problem({}) is not None:
        raise ConfigError("optimizer", config.optimizer, problem({}))
    for key, value in config.optimizer_kwargs.items():
        bad = problem({key: value})
        if bad is not None:
            raise ConfigError(f"optimizer_kwargs.{key}", value, bad)
    bad = problem(config.optimizer_kwargs)
    if bad is not None:
        raise ConfigError("optimizer_kwargs", dict(config.optimizer_kwargs), bad)
