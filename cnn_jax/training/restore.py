"""``restore(workdir)``: a finished run's model, variables and input normalisation, ready to use."""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from cnn_jax import io, models
from cnn_jax.config import TrainConfig
from cnn_jax.data.pipeline import normalize
from cnn_jax.training.checkpoint import CheckpointError, load_final_params
from cnn_jax.training.steps import evaluate

__all__ = ["Restored", "restore", "restore_params"]


@dataclasses.dataclass(frozen=True)
class Restored:
    """A trained model as its run left it.

    Attributes:
      config: the run's configuration (from ``config.json``).
      model: the model rebuilt from it, with the dataset's ``num_classes``.
      num_classes: the number of classes (logits) of the dataset it trained on.
      variables: ``{"params": ..., **other collections}`` (e.g. ``"batch_stats"``): the
        final weights the run's ``results.json`` reports on.
      mean, std: per-channel standardisation [C] the run trained with, or None.
      results: the run's ``results.json``.
    """

    config: TrainConfig
    model: nn.Module
    num_classes: int
    variables: dict[str, Any]
    mean: np.ndarray | None
    std: np.ndarray | None
    results: dict[str, Any]

    def preprocess(self, images: jax.Array) -> jax.Array:
        """uint8 images [N, H, W, C] -> the float32 inputs the model was trained on."""
        return normalize(images, self.mean, self.std)

    def __call__(self, images: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        """``(logits [N, num_classes], features)`` of uint8 ``images`` [N, H, W, C]
        (``train=False``: BatchNorm uses its running averages)."""
        return self.model.apply(self.variables, self.preprocess(images), train=False)

    def validation_data(self):
        """The run's validation set (``cnn_jax.data.Dataset``), loaded as the run loaded it."""
        from cnn_jax import data  # pulls in TFDS

        c = self.config
        return data.load_splits(c.dataset, validation=c.validation,
                                validation_fraction=c.validation_fraction, seed=c.seed,
                                data_dir=c.data_dir)[1]

    def evaluate(self, images: jax.Array, labels: jax.Array, *,
                 batch_size: int | None = None) -> dict[str, float]:
        """Loss and accuracy on uint8 ``images`` [N, H, W, C] and int ``labels`` [N], batched
        as the run evaluated (its batch size, unless ``batch_size`` is given)."""
        run = jax.jit(functools.partial(
            evaluate, apply_fn=self.model.apply, batch_size=batch_size or self.config.batch_size,
            mean=self.mean, std=self.std, loss=self.config.loss))
        out = jax.device_get(run(self.variables, jax.numpy.asarray(images),
                                 jax.numpy.asarray(labels, jax.numpy.int32)))
        return {k: float(v) for k, v in out.items()}


def restore(workdir: str) -> Restored:
    """Restores the finished run in ``workdir``.

    Usage, on a finished run (tests/test_train_script.py does the same on a tiny one)::

        run = restore("runs/quickstart")
        valid = run.validation_data()
        run.evaluate(valid.images, valid.labels)["accuracy"]
        logits, features = run(valid.images[:8])

    Args:
      workdir: a workdir ``training.fit`` finished (it holds ``config.json``,
        ``model.json``, ``results.json`` and ``final/``).

    Returns:
      A :class:`Restored`: model, variables, normalisation, config and results.

    Raises:
      CheckpointError: naming the file that is missing or unreadable (the run is not
        finished, or the folder holds no training run).
    """
    config = _read(workdir, "config.json", TrainConfig.from_dict)
    meta = _read(workdir, "model.json", dict)
    models.import_module(config.model_module)
    from cnn_jax.training.loop import model_arguments

    model = models.get(config.model, num_classes=meta["num_classes"], **model_arguments(config))
    variables = load_final_params(workdir)
    as_array = lambda v: None if v is None else np.asarray(v, np.float32)
    return Restored(config, model, int(meta["num_classes"]), variables,
                    as_array(meta.get("mean")), as_array(meta.get("std")),
                    _read(workdir, "results.json", dict))


def _read(workdir: str, name: str, parse):
    """``parse`` of the JSON file ``workdir/name``; CheckpointError naming it otherwise."""
    path = os.path.join(workdir, name)
    try:
        return parse(io.read_json(path))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file; expected the workdir of a finished "
                              "training run (rerun its command)") from None
    except Exception as e:  # unreadable or not a run's file: say which and why
        text = " ".join(str(e).split())[:200]
        raise CheckpointError(f"{path}: not a training run's {name} ({type(e).__name__}: "
                              f"{text})") from None


def restore_params(workdir: str) -> tuple[str, dict[str, Any], Any]:
    """``(model name, model_kwargs, params)`` of the finished run in ``workdir``: the
    ``"params"`` collection alone, for models without other collections.

    Raises:
      CheckpointError: as :func:`restore`.
    """
    run = restore(workdir)
    kwargs = {k: tuple(v) if isinstance(v, list) else v
              for k, v in run.config.model_kwargs.items()}
    return run.config.model, kwargs, run.variables["params"]
