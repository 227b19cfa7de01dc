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
from cnn_jax.training.checkpoint import load_final_params
from cnn_jax.training.steps import evaluate

__all__ = ["Restored", "restore"]


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

    >>> run = restore("runs/quickstart")                          # doctest: +SKIP
    >>> valid = run.validation_data()                             # doctest: +SKIP
    >>> run.evaluate(valid.images, valid.labels)["accuracy"]      # doctest: +SKIP
    >>> logits, features = run(valid.images[:8])                  # doctest: +SKIP

    Args:
      workdir: a workdir ``training.fit`` finished (it holds ``config.json``,
        ``model.json``, ``results.json`` and ``final/``).

    Returns:
      A :class:`Restored`: model, variables, normalisation, config and results.

    Raises:
      FileNotFoundError: naming the missing file, if the run is not finished.
    """
    paths = {name: os.path.join(workdir, name)
             for name in ("config.json", "model.json", "results.json", "final")}
    for path in paths.values():
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} does not exist: {workdir!r} holds no finished "
                                    "run of this version of cnn_jax (rerun its command)")
    config = TrainConfig.from_dict(io.read_json(paths["config.json"]))
    meta = io.read_json(paths["model.json"])
    models.import_module(config.model_module)
    model = models.get(config.model, num_classes=meta["num_classes"], **config.model_kwargs)
    as_array = lambda v: None if v is None else np.asarray(v, np.float32)
    return Restored(config, model, int(meta["num_classes"]), load_final_params(workdir),
                    as_array(meta["mean"]), as_array(meta["std"]),
                    io.read_json(paths["results.json"]))
