"""Training for the experiments: a registry model on the first N examples of a dataset,
through ``training.fit`` (resumable, checkpointed), returning the model and its parameters.

With ``patience`` > 0 a run follows the lecture's protocol: up to ``epochs`` epochs, early
stopping on the validation loss (``min_delta`` 0, that patience) with the best weights restored;
the validation set is the test set, as in the lecture.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import flax.linen as nn

from cnn_jax import data, models
from cnn_jax.config import EarlyStoppingConfig, TrainConfig
from cnn_jax.experiments import checks
from cnn_jax.training import DeviceData, fit, make_mesh
from cnn_jax.training.checkpoint import load_final_params

__all__ = ["load_subsets", "train"]


def load_subsets(dataset: str, train_examples: int, test_examples: int
                 ) -> tuple[data.Dataset, data.Dataset]:
    """The first ``train_examples`` of the train split and ``test_examples`` of the test split
    (0: all of it).

    Raises:
      checks.FlagError: a count above the split's size (``field`` names its flag); the settings
        refuse that before loading when the size is known (``checks.subsets``).
    """
    out = []
    for flag, split, n in (("train_examples", "train", train_examples),
                           ("test_examples", "test", test_examples)):
        ds = data.load(dataset, split)
        checks.examples(flag, n, len(ds), what=f"{split} examples")
        out.append(data.select(ds, slice(0, n), f"[:{n}]") if n else ds)
    return out[0], out[1]


def train(workdir: str, model: str, model_kwargs: Mapping[str, Any], train_set: data.Dataset,
          test_set: data.Dataset, *, epochs: int, batch_size: int = 256, seed: int = 0,
          learning_rate: float = 1e-3, patience: int = 0
          ) -> tuple[nn.Module, Any, dict[str, Any]]:
    """Trains ``model`` with Adam on ``train_set``, validating on ``test_set``, in ``workdir``.

    ``patience`` 0 trains exactly ``epochs`` epochs; > 0 stops once the validation loss has not
    improved for that many epochs and keeps the best epoch's weights (Keras's
    ``EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)``).
    A finished run in ``workdir`` is not retrained; an interrupted one resumes.

    Returns:
      ``(module, params, results)``: the built model, its final parameters and ``fit``'s
      results (``param_count``, ``valid_accuracy``, ``wall_time``, ...).
    """
    # Lists, as config.json stores them, so that a rerun finds the same configuration.
    kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in model_kwargs.items()}
    config = TrainConfig(model=model, model_kwargs=kwargs,
                         dataset=train_set.info.name, epochs=epochs, batch_size=batch_size,
                         seed=seed, learning_rate=learning_rate, num_devices=1,
                         early_stopping=EarlyStoppingConfig(
                             monitor="val_loss", min_delta=0.0, patience=patience,
                             restore_best_weights=True) if patience else None)
    mesh = make_mesh(1)
    device_data = DeviceData.from_arrays(train_set.images, train_set.labels, test_set.images,
                                         test_set.labels, train_set.info.num_classes,
                                         mesh=mesh)
    results = fit(config, workdir, data=device_data, mesh=mesh)
    module = models.get(model, num_classes=train_set.info.num_classes, **kwargs)
    return module, load_final_params(os.path.abspath(workdir))["params"], results
