"""What the experiments that train several models share: one resumable sub-run per model and
seed, test accuracy of its final parameters, seed statistics, and the experiment.json file.

A sub-run is a ``training.fit`` workdir under the experiment's workdir. ``fit`` returns a
finished run's results at once, and the test scores are kept in ``test.json`` beside them,
so an interrupted experiment reruns only what is missing.
"""

from __future__ import annotations

import csv
import functools
import io as io_
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from cnn_jax import io, models
from cnn_jax.config import TrainConfig
from cnn_jax.data.pipeline import to_device
from cnn_jax.training import DeviceData, evaluate, fit
from cnn_jax.training.restore import restore_params

__all__ = ["accuracy_fn", "mean_sd", "param_count", "rows_csv", "train_and_test",
           "write_experiment"]

EXPERIMENT_KEYS = ("name", "title", "claim", "command", "quick", "finding", "tables", "figures",
                   "numbers")


def param_count(model: str, model_kwargs: Mapping[str, Any], input_shape: Sequence[int],
                num_classes: int) -> int:
    """Trainable parameters of a registry model built for [1, *input_shape] inputs."""
    module = models.get(model, num_classes=num_classes, **model_kwargs)
    x = jax.ShapeDtypeStruct((1, *input_shape), np.float32)
    shapes = jax.eval_shape(lambda a: module.init(jax.random.key(0), a), x)
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(shapes["params"]))


def accuracy_fn(model: str, model_kwargs: Mapping[str, Any], params, num_classes: int, *,
                batch_size: int = 256) -> Callable[[np.ndarray, np.ndarray], float]:
    """``f(images uint8 [N, H, W, C], labels [N]) -> accuracy`` of trained parameters.

    One compiled program per input shape; images are scaled to [0, 1] as in training.
    """
    module = models.get(model, num_classes=num_classes, **model_kwargs)
    run = jax.jit(functools.partial(evaluate, apply_fn=module.apply, batch_size=batch_size))

    def accuracy(images, labels):
        x, y = to_device(np.asarray(images), np.asarray(labels, np.int32))
        return float(run({"params": params}, x, y)["accuracy"])

    return accuracy


def train_and_test(config: TrainConfig, workdir: str, data: Callable[[], DeviceData],
                   tests: Callable[[], Mapping[str, tuple[np.ndarray, np.ndarray]]],
                   num_classes: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Trains one sub-run (or finds it finished) and scores its final parameters.

    Args:
      config: the run's configuration.
      workdir: the sub-run's folder.
      data: builds the training/validation data (called only when training is needed).
      tests: builds ``{name: (images uint8, labels)}`` (called only when scores are needed).
      num_classes: the head's size.
      log: progress messages.

    Returns:
      ``fit``'s results plus ``{name}_accuracy`` for every test set (also in ``test.json``).
    """
    scores_path = os.path.join(workdir, "test.json")
    if os.path.exists(scores_path) and os.path.exists(os.path.join(workdir, "results.json")):
        return {**io.read_json(os.path.join(workdir, "results.json")),
                **io.read_json(scores_path)}
    log(f"{workdir}: training {config.model}")
    results = fit(config, workdir, data=data())
    model, kwargs, params = restore_params(workdir)
    accuracy = accuracy_fn(model, kwargs, params, num_classes, batch_size=config.batch_size)
    scores = {f"{name}_accuracy": accuracy(*xy) for name, xy in tests().items()}
    io.write_json(scores_path, scores)
    log(f"{workdir}: {results['status']} after {results['epochs_run']} epochs, "
        + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    return {**results, **scores}


def rows_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """CSV text of dict rows with the given columns (others dropped)."""
    buf = io_.StringIO()
    writer = csv.DictWriter(buf, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def mean_sd(values: Sequence[float]) -> tuple[float, float, int]:
    """(mean, sample standard deviation (NaN for one value), n)."""
    v = np.asarray(values, np.float64)
    if v.size == 0:
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else math.nan, int(v.size)


def write_experiment(workdir: str, record: Mapping[str, Any]) -> str:
    """Writes ``experiment.json`` (the shared contract's keys, plus any extra ones) atomically."""
    missing = [k for k in EXPERIMENT_KEYS if k not in record]
    if missing:
        raise ValueError(f"experiment record lacks {missing}")
    path = os.path.join(workdir, "experiment.json")
    io.write_json(path, _finite(dict(record)))
    return path


def _finite(obj):
    """JSON has no NaN: missing statistics become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
