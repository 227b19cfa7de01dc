"""``fit``: the epoch loop around the compiled epoch programs, with early stopping,
checkpoint/resume, metric logging and atomic result files."""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from cnn_jax import io, models, plotting
from cnn_jax.config import TrainConfig
from cnn_jax.data.pipeline import to_device
from cnn_jax.training.checkpoint import Checkpointer, save_final_params
from cnn_jax.training.early_stopping import EarlyStopping
from cnn_jax.training.steps import create_train_state, evaluate, make_optimizer, train_epoch

log = logging.getLogger(__name__)

FINISHED = ("completed", "stopped_early", "non_finite_loss")


@dataclasses.dataclass(frozen=True)
class DeviceData:
    """Train and validation sets on the device(s), uint8 images [N,H,W,C] + int32 labels [N]."""

    train_images: jax.Array
    train_labels: jax.Array
    valid_images: jax.Array
    valid_labels: jax.Array
    num_classes: int
    mean: Any = None  # per-channel statistics for standardisation, or None
    std: Any = None

    @classmethod
    def from_arrays(cls, train_images, train_labels, valid_images, valid_labels, num_classes,
                    *, standardize: bool = False, mesh: Mesh | None = None) -> DeviceData:
        """Places numpy arrays on the devices of ``mesh`` (replicated), once."""
        sharding = None if mesh is None else NamedSharding(mesh, PartitionSpec())
        mean = std = None
        if standardize:
            pixels = train_images.reshape(-1, train_images.shape[-1]) / 255.0
            mean, std = pixels.mean(0).astype(np.float32), pixels.std(0).astype(np.float32)
            std = np.maximum(std, 1e-6)
        return cls(*to_device(train_images, train_labels, sharding),
                   *to_device(valid_images, valid_labels, sharding), num_classes, mean, std)


def load_data(config: TrainConfig, mesh: Mesh | None = None) -> DeviceData:
    """Loads ``config.dataset`` (train and validation per ``config.validation``) to device."""
    from cnn_jax import data  # the loaders pull in TFDS; import them only when needed

    train, valid = data.load_splits(
        config.dataset, validation=config.validation,
        validation_fraction=config.validation_fraction, seed=config.seed,
        data_dir=config.data_dir)
    log.info("data: %s train %d, valid %d (%s)", config.dataset, len(train.labels),
                 len(valid.labels), train.source)
    return DeviceData.from_arrays(train.images, train.labels, valid.images, valid.labels,
                                  train.info.num_classes, standardize=config.standardize,
                                  mesh=mesh)


def make_mesh(num_devices: int = 0) -> Mesh:
    """A 1-D mesh with axis ``"batch"`` over the first ``num_devices`` devices (0: all)."""
    devices = jax.devices()
    if num_devices > len(devices):
        raise ValueError(f"num_devices={num_devices} but only {len(devices)} devices exist")
    return Mesh(np.array(devices[: num_devices or len(devices)]), ("batch",))


def model_arguments(config: TrainConfig) -> dict[str, Any]:
    """``config.model_kwargs`` plus ``precision`` unless it is "default" (the model's own
    default then: JAX's), so models without a ``precision`` argument train at "default".

    Raises:
      ValueError: "high"/"highest" for a model without a ``precision`` argument, or a
        ``precision`` in ``model_kwargs`` as well.
    """
    kwargs = dict(config.model_kwargs)
    if config.precision == "default":
        return kwargs
    if "precision" in kwargs:
        raise ValueError(f"precision={config.precision!r} and model_kwargs precision="
                         f"{kwargs['precision']!r}: set it in one place (the precision field)")
    if "precision" not in models.arguments(config.model):
        raise ValueError(f"precision={config.precision!r}: model {config.model!r} has no "
                         "precision argument; use precision='default'")
    return {**kwargs, "precision": config.precision}


def eval_batch_size(batch_size: int, mesh: Mesh) -> int:
    """Evaluation batch: the training batch (as Keras validates), a multiple of the devices."""
    d = mesh.devices.size
    return -(-batch_size // d) * d


def fit(config: TrainConfig, workdir: str, *, data: DeviceData | None = None,
        mesh: Mesh | None = None, should_stop: Callable[[], bool] | None = None
        ) -> dict[str, Any]:
    """Trains ``config.model`` and writes the run into ``workdir``.

    Files: ``config.json``, ``metrics.jsonl`` (one line per epoch), ``results.json``,
    ``figures/history.png``, ``checkpoints/`` and ``final/``. Rerunning on the same workdir
    resumes from the last checkpoint (same final metrics as an uninterrupted run) and
    returns a finished run's results at once.

    ``should_stop`` is asked after every epoch (once its checkpoint is saved); when it
    returns True the run ends with ``KeyboardInterrupt`` and no results, ready to resume
    (scripts/train.py wires it to Ctrl-C).

    Returns:
      The results dict (also in ``results.json``).
    """
    os.makedirs(workdir, exist_ok=True)
    results_path = os.path.join(workdir, "results.json")
    config_path = os.path.join(workdir, "config.json")
    if os.path.exists(config_path) and io.read_json(config_path) != config.to_dict():
        raise ValueError(f"workdir {workdir!r} holds a run with another configuration; "
                         "use a new workdir")
    if os.path.exists(results_path):
        results = io.read_json(results_path)
        if results.get("status") in FINISHED:
            log.info("%s: finished already (%s)", workdir, results["status"])
            return results
    io.write_json(config_path, config.to_dict())

    mesh = mesh or make_mesh(config.num_devices)
    data = data or load_data(config, mesh)
    model = models.get(config.model, num_classes=data.num_classes, **model_arguments(config))
    tx = make_optimizer(config.optimizer, config.learning_rate, **config.optimizer_kwargs)
    init_key, epoch_root = jax.random.split(jax.random.key(config.seed))
    state = create_train_state(model, tx, init_key, data.train_images.shape[1:])
    state = jax.device_put(state, NamedSharding(mesh, PartitionSpec()))
    param_count = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(state.params))

    stopper = EarlyStopping(config.early_stopping) if config.early_stopping else None
    best_params, history, start = None, [], 0
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints")) if config.checkpoint_every else None
    if ckpt is not None and ckpt.latest_epoch() is not None:
        tree, meta = ckpt.restore(ckpt.latest_epoch(), {"state": state, "best": state.params})
        state, history, start = tree["state"], meta["history"], meta["epoch"] + 1
        if stopper is not None:
            stopper = EarlyStopping.from_state_dict(config.early_stopping, meta["early_stopping"])
            best_params = tree["best"] if stopper.has_best_weights else None
        log.info("%s: resuming after epoch %d", workdir, start)

    n_train = data.train_images.shape[0]
    norm = dict(mean=data.mean, std=data.std, mesh=mesh)
    run_epoch = jax.jit(functools.partial(
        train_epoch, batch_size=config.batch_size, drop_remainder=config.drop_remainder,
        loss=config.loss, **norm),
        donate_argnums=0)
    run_eval = jax.jit(functools.partial(
        evaluate, apply_fn=state.apply_fn,
        batch_size=eval_batch_size(config.batch_size, mesh), loss=config.loss, **norm))
    status, message = "completed", ""
    t_run = time.perf_counter()
    stopped = stopper is not None and stopper.stop_training
    for epoch in range(start, 0 if stopped else config.epochs):
        t0 = time.perf_counter()
        state, train_m = run_epoch(state, data.train_images, data.train_labels,
                                   jax.random.fold_in(epoch_root, epoch))
        train_m = jax.device_get(train_m)
        t_train = time.perf_counter() - t0
        val_m = jax.device_get(run_eval(state.params, data.valid_images, data.valid_labels))
        dt = time.perf_counter() - t0
        logs = {"loss": float(train_m["loss"]), "accuracy": float(train_m["accuracy"]),
                "val_loss": float(val_m["loss"]), "val_accuracy": float(val_m["accuracy"])}
        history.append({"epoch": epoch + 1, **logs, "epoch_time": dt, "train_time": t_train,
                        "samples_per_s": n_train / t_train})
        if not all(math.isfinite(v) for v in logs.values()):
            status = "non_finite_loss"
            message = f"loss became non-finite at epoch {epoch + 1}: {logs}"
            log.error("%s", message)
            io.write_jsonl(os.path.join(workdir, "metrics.jsonl"), history)
            break
        if stopper is not None and stopper.update(epoch, logs):
            best_params = jax.tree.map(jnp.copy, state.params)
        last = epoch + 1 == config.epochs or (stopper is not None and stopper.stop_training)
        if ckpt is not None and ((epoch + 1) % config.checkpoint_every == 0 or last):
            ckpt.save(epoch, {"state": state,
                             "best": state.params if best_params is None else best_params},
                      {"epoch": epoch, "history": history,
                       "early_stopping": stopper.state_dict() if stopper else None})
        io.write_jsonl(os.path.join(workdir, "metrics.jsonl"), history)
        log.info("%s", _progress(history, config.epochs))
        if stopper is not None and stopper.stop_training:
            break
        if should_stop is not None and should_stop() and epoch + 1 < config.epochs:
            if ckpt is not None:
                ckpt.close()
            raise KeyboardInterrupt(f"{workdir}: interrupted after epoch {epoch + 1}")
    if ckpt is not None:
        ckpt.close()

    if stopper is not None and stopper.stop_training and status == "completed":
        status = "stopped_early"
    final = best_params if (stopper is not None and stopper.restores_weights
                            and best_params is not None) else state.params
    train_eval = jax.device_get(run_eval(final, data.train_images, data.train_labels))
    valid_eval = jax.device_get(run_eval(final, data.valid_images, data.valid_labels))
    save_final_params(workdir, final)
    results = {
        "status": status, "message": message, "model": config.model,
        "param_count": param_count, "epochs_run": len(history),
        "best_epoch": (stopper.best_epoch + 1) if stopper else len(history),
        "stopped_epoch": (stopper.stopped_epoch + 1) if stopper and stopper.stop_training else 0,
        "train_loss": float(train_eval["loss"]), "train_accuracy": float(train_eval["accuracy"]),
        "valid_loss": float(valid_eval["loss"]), "valid_accuracy": float(valid_eval["accuracy"]),
        "wall_time": time.perf_counter() - t_run + sum(
            r["epoch_time"] for r in history[:start]),
        "devices": int(mesh.devices.size), "backend": jax.default_backend(),
    }
    if history:
        plotting.plot_history(history, os.path.join(workdir, "figures", "history.png"))
    io.write_json(results_path, results)
    return results


def _progress(history, epochs: int) -> str:
    r = history[-1]
    mean_time = float(np.mean([h["epoch_time"] for h in history[-5:]]))
    eta = mean_time * (epochs - r["epoch"])
    return (f"epoch {r['epoch']:3d}/{epochs}  loss {r['loss']:.4f}  acc {r['accuracy']:.4f}  "
            f"val_loss {r['val_loss']:.4f}  val_acc {r['val_accuracy']:.4f}  "
            f"{r['samples_per_s']:,.0f} samples/s  {r['epoch_time']:.2f}s  "
            f"ETA <= {eta / 60:.1f} min")
